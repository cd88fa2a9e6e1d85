//! Open connections per client address, per listener (issue 28, items 4
//! and 5): one host holding hundreds of idle or half-open sockets used up
//! the process's descriptors, and every new connection was refused. Over
//! the cap a connection is closed as soon as it is accepted, before any
//! TLS or HTTP work. IPv6 addresses count per /64.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Clone)]
pub struct ConnLimit {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of an address; counted until dropped.
pub struct ConnSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl ConnLimit {
    /// `max` = 0: no limit.
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` over the cap.
    pub fn acquire(&self, ip: IpAddr) -> Option<ConnSlot> {
        let key = key_of(ip);
        let mut open = self.open.lock();
        let n = open.entry(key).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            open: self.open.clone(),
            key,
        })
    }
}

/// A connection and its slot: the slot is freed when the connection is
/// dropped, whichever layer drops it.
pub struct Counted<T> {
    io: T,
    _slot: ConnSlot,
}

impl<T> Counted<T> {
    pub fn new(io: T, slot: ConnSlot) -> Counted<T> {
        Counted { io, _slot: slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
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

    #[test]
    fn caps_each_address_and_frees_on_drop() {
        let limit = ConnLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = limit.acquire(a).unwrap();
        let _two = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        assert!(limit.acquire(b).is_some());
        drop(one);
        assert!(limit.acquire(a).is_some());
        // One /64 is one address.
        let _x = limit.acquire("2001:db8::1".parse().unwrap()).unwrap();
        let _y = limit.acquire("2001:db8::2".parse().unwrap()).unwrap();
        assert!(limit.acquire("2001:db8::3".parse().unwrap()).is_none());
        assert!(ConnLimit::new(0).acquire(a).is_some());
    }
}
