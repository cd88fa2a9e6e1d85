//! Slow clients holding connections (issue 28, item 4): every request head
//! of a keep-alive connection is timed, not only the first, on HTTP and
//! HTTPS; so are request bodies; and one address holds a bounded number of
//! connections. Bounds are generous: they tell "cut" from "held forever".

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::abuse_support::*;
use crate::access_support::*;
use crate::helpers::*;

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// One `/health`, then a second head one byte at a time: the connection
/// must end (with a 408 envelope) within the head deadline plus slack.
async fn trickle_second_head<S>(mut conn: S)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    conn.write_all(HEALTH).await.unwrap();
    let first = read_answer(&mut conn).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (mut rd, mut wr) = tokio::io::split(conn);
    let trickle = tokio::spawn(async move {
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(2000)
        {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Deadline 1 s; 15 s is slack for a loaded machine, not a measurement.
    let rest = ended_within(&mut rd, Duration::from_secs(15)).await;
    trickle.abort();
    let rest = rest.expect("the trickled second head still held the connection after 15 s");
    assert!(rest.starts_with("HTTP/1.1 408"), "{rest}");
    assert!(rest.contains("\"Key\":\"RequestTimeout\""), "{rest}");
}

#[tokio::test]
async fn a_second_head_trickled_byte_by_byte_is_cut_on_http() {
    let app = spawn_with(|s| s.http.request_head_timeout_ms = 1000).await;
    let conn = connect_from("127.0.0.1", port_of(&app)).await.unwrap();
    trickle_second_head(conn).await;
}

#[tokio::test]
async fn a_second_head_trickled_byte_by_byte_is_cut_on_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = write_server_files(dir.path(), &ca.server_cert(false));
    let app = spawn_with(move |s| {
        s.http.request_head_timeout_ms = 1000;
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
    })
    .await;
    let port = app.server.as_ref().unwrap().tls_port.unwrap();
    trickle_second_head(tls_connect(&ca, port).await).await;
}

#[tokio::test]
async fn an_authenticated_body_that_does_not_arrive_is_cut() {
    let app = spawn_with(|s| s.http.request_body_timeout_ms = 1000).await;
    let mut conn = connect_from("127.0.0.1", port_of(&app)).await.unwrap();
    let credentials = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{POS}:{}", password(POS)))
    };
    let head = format!(
        "POST /api/card/active HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"Num"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = ended_within(&mut conn, Duration::from_secs(15))
        .await
        .expect("a body that never came held the request after 15 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"Key\":\"RequestTimeout\""), "{answer}");
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections() {
    let app = spawn_with(|s| {
        s.http.max_connections_per_address = 20;
        s.http.request_head_timeout_ms = 30_000;
    })
    .await;
    let port = port_of(&app);
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut conn = connect_from("127.0.0.2", port).await.unwrap();
        conn.write_all(HEALTH).await.unwrap();
        read_answer(&mut conn).await;
        held.push(conn);
    }
    // The 21st is closed at once, before any HTTP (no 408 after the head
    // timeout: nothing at all).
    let mut extra = connect_from("127.0.0.2", port).await.unwrap();
    let got = ended_within(&mut extra, Duration::from_secs(15))
        .await
        .expect("the 21st connection of one address was kept open");
    assert_eq!(got, "", "the 21st connection was served");
    // Other addresses are served.
    app.send(app.client.get(app.url("/health"))).await.ok();
    // A slot frees when a connection ends.
    drop(held.pop());
    let mut again = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let mut conn = connect_from("127.0.0.2", port).await.unwrap();
            if conn.write_all(HEALTH).await.is_ok() {
                let mut buf = [0u8; 1];
                if tokio::io::AsyncReadExt::read(&mut conn, &mut buf)
                    .await
                    .unwrap_or(0)
                    == 1
                {
                    return conn;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("no slot freed");
    drop(again.shutdown().await);
}
