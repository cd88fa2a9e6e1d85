//! Deadlines on reading each request head of a connection (issue 28, item
//! 4). actix-http times only a connection's *first* head; after one
//! `/health`, a client that sends one byte of a second request held the
//! connection (and its descriptor) forever. This wrapper knows just enough
//! HTTP/1 to tell when a head is being received: from the first byte after
//! an answer (or of the connection) to the blank line ending the head. In
//! that span the head must be complete within `head` of its first byte,
//! and no gap between bytes may exceed `idle`; past either, reading fails
//! with `TimedOut` (and [`EnvelopeIo`](super::transport::EnvelopeIo)
//! answers 408). Bodies are timed where they are read (`dispatch`), since
//! only there is it known how long one is and whether anyone reads it.
//! Between requests actix-http's keep-alive applies.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// From a head's first byte to its end.
    pub head: Duration,
    /// Between two bytes of a head.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between answers and the next request's first byte.
    Waiting,
    /// A head is arriving: when it started, its last byte, and how much of
    /// the `\r\n\r\n` that ends it was last seen.
    Head {
        started: Instant,
        last: Instant,
        matched: u8,
    },
    /// The head is in: the request is the application's until it answers.
    Answering,
}

pub struct ReadDeadline<T> {
    io: T,
    limits: HeadLimits,
    state: State,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> ReadDeadline<T> {
    pub fn new(io: T, limits: HeadLimits) -> ReadDeadline<T> {
        ReadDeadline {
            io,
            limits,
            state: State::Waiting,
            timer: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Follows the bytes just read through the head's end.
    fn saw(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        let mut rest = bytes;
        while !rest.is_empty() {
            match &mut self.state {
                State::Answering => return,
                State::Waiting => {
                    self.state = State::Head {
                        started: now,
                        last: now,
                        matched: 0,
                    };
                }
                State::Head { last, matched, .. } => {
                    *last = now;
                    const END: &[u8; 4] = b"\r\n\r\n";
                    let b = rest[0];
                    rest = &rest[1..];
                    *matched = if b == END[*matched as usize] {
                        *matched + 1
                    } else if b == b'\r' {
                        1
                    } else {
                        0
                    };
                    if *matched == 4 {
                        self.state = State::Answering;
                    }
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Head { started, last, .. } => {
                Some((started + self.limits.head).min(last + self.limits.idle))
            }
            _ => None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    let fresh = filled[before..].to_vec();
                    this.saw(&fresh);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = this.deadline() else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.state = State::Answering;
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head deadline",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // An answer other than `100 Continue` ends the request: what is
        // read next starts the next head.
        if !buf.is_empty() && !buf.starts_with(b"HTTP/1.1 1") {
            this.state = State::Waiting;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: HeadLimits = HeadLimits {
        head: Duration::from_secs(5),
        idle: Duration::from_secs(2),
    };

    #[test]
    fn the_head_ends_at_the_blank_line_even_across_reads() {
        let mut d = ReadDeadline::new((), LIMITS);
        d.saw(b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(matches!(d.state, State::Head { .. }));
        d.saw(b"\n\r");
        assert!(matches!(d.state, State::Head { matched: 3, .. }));
        d.saw(b"\nbody bytes \r\n\r\n");
        assert_eq!(d.state, State::Answering);
    }

    /// Bounds below are generous limits on a test that would otherwise
    /// hang, not measurements.
    #[tokio::test]
    async fn a_second_head_that_trickles_is_cut() {
        let limits = HeadLimits {
            head: Duration::from_millis(300),
            idle: Duration::from_secs(60),
        };
        let (client, server) = tokio::io::duplex(1024);
        let mut server = ReadDeadline::new(server, limits);
        let (mut client_rd, mut client_wr) = tokio::io::split(client);
        client_wr
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(n, 18);
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let _ = client_rd.read(&mut buf).await.unwrap();
        // A byte every 20 ms: never idle, but the head never ends.
        let trickle = tokio::spawn(async move {
            loop {
                if client_wr.write_all(b"G").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let cut = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(e) = server.read(&mut buf).await {
                    return e;
                }
            }
        })
        .await
        .expect("the trickled head was never cut");
        assert_eq!(cut.kind(), io::ErrorKind::TimedOut);
        trickle.abort();
    }

    #[tokio::test]
    async fn a_request_being_answered_is_not_timed() {
        let limits = HeadLimits {
            head: Duration::from_millis(50),
            idle: Duration::from_millis(50),
        };
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = ReadDeadline::new(server, limits);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 18];
        server.read_exact(&mut buf).await.unwrap();
        // The application takes its time: the connection is not cut.
        let read = tokio::time::timeout(Duration::from_millis(500), server.read(&mut buf)).await;
        assert!(read.is_err(), "{read:?}");
    }
}
