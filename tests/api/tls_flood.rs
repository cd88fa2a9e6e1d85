//! A flood of silent connections to the HTTPS port (issue 28, item 5): it
//! used up the shared workers' TLS handshake slots and plain HTTP stopped
//! answering too. The listeners have workers of their own now, handshakes
//! a short timeout, and each address a connection cap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::abuse_support::*;
use crate::access_support::*;
use crate::helpers::*;

/// Keeps `per_address` silent connections open from each of `addresses`,
/// reopening each as soon as the server closes it, until `stop`.
fn flood(
    port: u16,
    addresses: usize,
    per_address: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for a in 0..addresses {
        for _ in 0..per_address {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let from = format!("127.0.2.{}", a + 1);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut conn) = connect_from(&from, port).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    // Silent until the server gives up on the handshake.
                    let _ = ended_within(&mut conn, Duration::from_millis(500)).await;
                    while !stop.load(Ordering::Relaxed)
                        && ended_within(&mut conn, Duration::from_millis(500))
                            .await
                            .is_none()
                    {}
                }
            }));
        }
    }
    tasks
}

#[tokio::test]
async fn a_flood_of_silent_tls_connections_does_not_stop_plain_http_or_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = write_server_files(dir.path(), &ca.server_cert(false));
    let app = spawn_with(move |s| {
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
    })
    .await;
    let tls_port = app.server.as_ref().unwrap().tls_port.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // 600 silent connections from 10 addresses: more than the 2 workers'
    // 2 x 256 handshake slots actix-tls had, fewer than any address's cap.
    let tasks = flood(tls_port, 10, 60, stop.clone());
    // Let the flood reach the server before probing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probes = async {
        for _ in 0..4 {
            app.send(app.client.get(app.url("/health"))).await.ok();
        }
        let https = tls_client(&ca, None);
        let (status, _) = https_balance(
            &https,
            tls_port,
            "7000000000001",
            Some((POS, &password(POS))),
        )
        .await
        .unwrap();
        assert_eq!(status, 404);
    };
    let answered = tokio::time::timeout(Duration::from_secs(20), probes).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    answered.expect("plain HTTP or HTTPS stopped answering during the TLS flood (20 s)");
}
