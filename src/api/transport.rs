//! Answers in the envelope that actix-http would send bare. Before any
//! route, the HTTP layer answers a few requests on its own: a request head
//! it cannot parse (400), one too large (431: actix-http's fixed limits are
//! 128 KiB of head and 96 headers), one that does not arrive in time (408).
//! (It also answers a bare 500 when its own framing breaks.)
//! It writes those with an empty body and offers no hook to shape them.
//! This wrapper around each connection recognises them on their way out —
//! they are the only answers without a body this server writes, since each
//! of ours is an envelope — and writes the envelope in their place, with an
//! `X-Request-Id` and a Key of the catalogue, logged and counted like any
//! refused request. A later request head that misses its deadline
//! (`read_deadline`, which actix-http does not time) is answered here the
//! same way: 408 in the envelope, then the connection ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::catalogue::status_of;
use crate::domain::ErrorKey;
use crate::metrics as m;

pub struct EnvelopeIo<T> {
    io: T,
    peer: Option<SocketAddr>,
    /// An envelope replacing a bare answer, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
    /// A request head missed its deadline: 408 written, nothing more read.
    timed_out: bool,
}

impl<T> EnvelopeIo<T> {
    pub fn new(io: T, peer: Option<SocketAddr>) -> EnvelopeIo<T> {
        EnvelopeIo {
            io,
            peer,
            pending: None,
            timed_out: false,
        }
    }

    /// The wrapped connection (the TLS stream, for its client certificate).
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

/// Where in `buf` a bare error answer of actix-http starts, and the Key it
/// stands for. Such an answer ends the connection, so it is the last thing
/// written: only the tail of `buf` is looked at.
fn bare_error(buf: &[u8]) -> Option<(usize, ErrorKey)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let start = buf
        .windows(7)
        .rposition(|w| w == b"HTTP/1.")
        .filter(|&s| s == 0 || buf[..s].ends_with(b"}") || buf[..s].ends_with(b"\n"))?;
    let head = &buf[start..];
    let status = head.get(9..13)?;
    let key = match status {
        b"400 " => ErrorKey::MalformedRequest,
        b"408 " => ErrorKey::RequestTimeout,
        b"431 " => ErrorKey::HeadersTooLarge,
        b"500 " => ErrorKey::InternalError,
        _ => return None,
    };
    // One head only, with an empty body.
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if text.matches("\r\n\r\n").count() != 1 || !text.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    Some((start, key))
}

fn envelope(key: ErrorKey, peer: Option<SocketAddr>) -> Vec<u8> {
    let status = status_of(key);
    let message = match key {
        ErrorKey::HeadersTooLarge => {
            "the request line and headers exceed what the server accepts (128 KiB, 96 headers)"
        }
        ErrorKey::RequestTimeout => "the request head did not arrive in time",
        ErrorKey::InternalError => "internal error",
        _ => "the HTTP request could not be parsed (request line, headers or framing)",
    };
    let request_id = format!("{:032x}", rand::random::<u128>());
    let client = peer.map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
    m::http_request("unparsed", "OTHER", status.as_u16(), 0.0);
    m::error(key.as_str());
    tracing::warn!(%request_id, route = "unparsed", client, key = key.as_str(), status = status.as_u16(), message, "request refused");
    let body = json!({"Status": false, "Key": key.as_str(), "Value": message}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> EnvelopeIo<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for EnvelopeIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.timed_out {
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    this.timed_out = true;
                    this.pending = Some((envelope(ErrorKey::RequestTimeout, this.peer), 0));
                }
                other => return other,
            }
        }
        // The 408 goes out, then the connection reads as ended.
        ready!(this.poll_pending(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopeIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        match bare_error(buf) {
            // What precedes it (pipelined answers) goes out as it is first.
            Some((start, _)) if start > 0 => Pin::new(&mut this.io).poll_write(cx, &buf[..start]),
            Some((_, key)) => {
                this.pending = Some((envelope(key, this.peer), 0));
                // The bare answer counts as written; ours goes out in its
                // place, now or on the flush that follows.
                if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut this.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Sat, 28 Nov 2026 18:00:00 GMT\r\n\r\n";

    #[test]
    fn bare_error_answers_are_recognised_at_the_end_only() {
        assert_eq!(bare_error(BARE_400), Some((0, ErrorKey::MalformedRequest)));
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_error(big), Some((0, ErrorKey::HeadersTooLarge)));
        // After a pipelined answer of ours.
        let ours =
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
        let both = [&ours[..], BARE_400].concat();
        assert_eq!(
            bare_error(&both),
            Some((ours.len(), ErrorKey::MalformedRequest))
        );
        // Our own answers carry a body: never touched.
        let envelope_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 40\r\n\r\n{\"Status\":false,\"Key\":\"InvalidJson\"}";
        assert_eq!(bare_error(envelope_400), None);
        assert_eq!(bare_error(ours), None);
        let not_an_error = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_error(not_an_error), None);
    }

    #[tokio::test]
    async fn the_bare_answer_is_replaced_by_the_envelope() {
        use tokio::io::AsyncWriteExt;
        let mut out = EnvelopeIo::new(Vec::new(), None);
        out.write_all(BARE_400).await.unwrap();
        out.flush().await.unwrap();
        let text = String::from_utf8(out.io).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("x-request-id: "), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["Key"], "MalformedRequest");
        assert_eq!(v["Status"], false);
    }
}
