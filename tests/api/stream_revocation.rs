//! Revocation reaches a load already running (issue 28, item 7): an
//! administrator removed by a reload mid-NDJSON stream loads nothing more,
//! and a stream that never ends is stopped by `bulk.max_stream_secs`.

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::access_support::*;
use crate::helpers::*;

/// The demo users without `login`'s entry.
fn demo_users_without(login: &str) -> String {
    std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml"),
    )
    .unwrap()
    .split("[[users]]")
    .filter(|entry| !entry.contains(&format!("login = \"{login}\"")))
    .collect::<Vec<_>>()
    .join("[[users]]")
}

/// Opens `POST /api/admin/cards` as the demo admin with a chunked NDJSON
/// body whose end is not sent yet.
async fn open_load(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{}", password(ADMIN)));
    let head = format!(
        "POST /api/admin/cards HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock
}

async fn send_cards(sock: &mut TcpStream, numbers: &[&str]) {
    let lines: String = numbers
        .iter()
        .map(|n| format!("{{\"Number\":\"{n}\"}}\n"))
        .collect();
    let chunk = format!("{:x}\r\n{lines}\r\n", lines.len());
    sock.write_all(chunk.as_bytes()).await.unwrap();
}

/// Ends the body and reads the answer's envelope.
async fn finish(mut sock: TcpStream, end_body: bool) -> Value {
    if end_body {
        sock.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is one JSON body after the head; read until it parses.
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed without an answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn an_admin_removed_mid_stream_loads_no_further_batch() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file_with(dir.path(), "");
    let path = users.clone();
    let app = spawn_with(move |s| {
        s.auth.users_file = users;
        s.bulk.card_batch = 2;
    })
    .await;
    let cards: Vec<String> = (0..4).map(|_| unique_card()).collect();
    let mut sock = open_load(&app).await;
    send_cards(&mut sock, &[&cards[0], &cards[1]]).await;
    // The first batch is in once its cards answer (no timing assumed).
    while app.balance(&cards[1]).await.status != 200 {
        tokio::task::yield_now().await;
    }

    replace_file(&path, &demo_users_without(ADMIN));
    app.server
        .as_ref()
        .unwrap()
        .reloader
        .reload_users()
        .unwrap();
    send_cards(&mut sock, &[&cards[2], &cards[3]]).await;
    let answer = finish(sock, true).await;

    assert_eq!(answer["Key"], "Unauthorized", "{answer}");
    assert_eq!(answer["Created"], 2, "{answer}");
    for n in &cards[2..] {
        app.balance(n).await.expect(404, "CannotFindCardNumber");
    }
}

#[tokio::test]
async fn a_stream_that_never_ends_is_stopped_at_its_deadline() {
    let app = spawn_with(|s| {
        s.bulk.card_batch = 1;
        s.bulk.max_stream_secs = 1;
    })
    .await;
    let card = unique_card();
    let mut sock = open_load(&app).await;
    send_cards(&mut sock, &[&card]).await;
    // The body is never ended: the deadline must answer.
    let answer = finish(sock, false).await;
    assert_eq!(answer["Key"], "RequestTimeout", "{answer}");
    assert_eq!(answer["Created"], 1, "{answer}");
}
