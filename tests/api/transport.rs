//! What the HTTP layer answers before any route — an unparsable request
//! line, a head over actix-http's limits — is in the envelope too, with a
//! request id (issue 13, item 7).

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Sends raw bytes, reads until the server closes; (head, last body).
async fn raw(app: &TestApp, bytes: Vec<u8>) -> (String, Value) {
    let addr = app.address.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // The server may answer and close before it has read everything.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        wr
    });
    let mut out = Vec::new();
    let _ = rd.read_to_end(&mut out).await;
    drop(writer.await);
    let text = String::from_utf8_lossy(&out).into_owned();
    let last = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
    let (head, body) = last.split_once("\r\n\r\n").unwrap_or((last, ""));
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (format!("HTTP/1.1 {head}").to_ascii_lowercase(), body)
}

#[track_caller]
fn assert_envelope(head: &str, body: &Value, status: &str, key: &str) {
    assert!(head.starts_with(&format!("http/1.1 {status} ")), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body["Status"], false, "{body}");
    assert_eq!(body["Key"], key, "{body}");
    assert!(!body["Value"].as_str().unwrap_or("").is_empty(), "{body}");
}

#[tokio::test]
async fn a_garbage_request_line_is_answered_in_the_envelope() {
    let app = spawn_app().await;
    let (head, body) = raw(&app, b"GARBAGE\r\n\r\n".to_vec()).await;
    assert_envelope(&head, &body, "400", "MalformedRequest");
    let (head, body) = raw(&app, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".to_vec()).await;
    assert_envelope(&head, &body, "400", "MalformedRequest");
}

#[tokio::test]
async fn a_200_kb_header_is_answered_in_the_envelope() {
    let app = spawn_app().await;
    let mut req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 200 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let (head, body) = raw(&app, req).await;
    assert_envelope(&head, &body, "431", "HeadersTooLarge");
}

#[tokio::test]
async fn garbage_after_a_good_request_on_one_connection() {
    let app = spawn_app().await;
    let bytes = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n".to_vec();
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let answers: Vec<&str> = text.split("HTTP/1.1 ").filter(|a| !a.is_empty()).collect();
    assert_eq!(answers.len(), 2, "{text}");
    assert!(answers[0].starts_with("200 "), "{text}");
    assert!(answers[1].starts_with("400 "), "{text}");
    assert!(answers[1].contains(r#""Key":"MalformedRequest""#), "{text}");
    // Ordinary requests are untouched.
    app.send(app.client.get(app.url("/health"))).await.ok();
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_is_answered_in_the_envelope() {
    let app = spawn_with(|s| s.http.request_head_timeout_ms = 300).await;
    let (head, body) = raw(&app, b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec()).await;
    assert_envelope(&head, &body, "408", "RequestTimeout");
}
