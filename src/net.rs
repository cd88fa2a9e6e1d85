//! Listening sockets with a backlog sized for a fleet: after a deploy
//! thousands of tills connect within the same second, and the standard
//! library's fixed backlog of 128 drops the rest of their SYNs, which the
//! tills then resend only after one, three, seven seconds.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Socket, Type};

pub fn listen(bind: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = bind.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted server must not wait for the old one's TIME_WAIT sockets.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // The kernel caps it at net.core.somaxconn.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn listens_on_a_free_port_and_refuses_nonsense() {
        let l = super::listen("127.0.0.1:0", 4096).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
        assert!(super::listen("not an address", 16).is_err());
    }
}
