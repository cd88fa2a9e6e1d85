//! What the network-abuse tests (issue 28) need: clients and raw
//! connections from chosen loopback addresses (all of 127.0.0.0/8 is local
//! on Linux, so "another host" is another address), TLS over a raw socket,
//! and waiting for the server to end a connection within a generous bound.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::access_support::Ca;
use crate::helpers::*;

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A client whose connections come from `from`.
pub fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip(from))
        .build()
        .unwrap()
}

pub fn port_of(app: &TestApp) -> u16 {
    app.server.as_ref().unwrap().port
}

/// A raw TCP connection from `from` to the server's `port`.
pub async fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip(from), 0))?;
    socket.connect(SocketAddr::new(ip("127.0.0.1"), port)).await
}

/// A TLS connection (trusting `ca`) over a raw socket.
pub async fn tls_connect(ca: &Ca, port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = ca.pem();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = connect_from("127.0.0.1", port).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads one answer to a `/health` request (its head and a body of
/// `Content-Length` bytes).
pub async fn read_answer<R: AsyncRead + Unpin>(io: &mut R) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// Everything the server sends until it ends the connection, or `None` if
/// it is still open after `within` (a generous bound, never a measurement).
pub async fn ended_within<R: AsyncRead + Unpin>(io: &mut R, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}
