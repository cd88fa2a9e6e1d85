//! The binary's log holds no secrets and no personal data (issue 28, item
//! 9): not the mobile number of a 404, not raw invalid input, not a
//! password typed into the login field, and with `log.requests = true` not
//! the contact's fields nor `password=` / `api_token=` query parameters.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

const BIN: &str = env!("CARGO_BIN_EXE_loyalty");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(port: u16, method: &str, path: &str, basic: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(basic);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_log_keeps_no_secrets_or_personal_data() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("LOYALTY__DEMO__DATA_FILE", "")
        .env("LOYALTY__LOG__FORMAT", "json")
        .env("LOYALTY__LOG__REQUESTS", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("listening") {
            break;
        }
    }
    let pos = "pos:pos-demo";
    let answer = request(
        port,
        "GET",
        "/api/card/balance/by/phone/79161234567",
        pos,
        "",
    );
    assert!(answer.contains("CannotFind"), "{answer}");
    request(
        port,
        "GET",
        "/api/card/balance/by/7000000000001?password=hunter2-secret&api_token=lt1_tok",
        pos,
        "",
    );
    // A password typed into the login field.
    request(port, "GET", "/api/card/balance/by/1", "Sup3rSecretPw:x", "");
    request(
        port,
        "POST",
        "/api/purchase/confirm",
        pos,
        r#"{"Number":"7000000000001","PurchaseId":"p","Amount":"777.123456"}"#,
    );
    request(
        port,
        "POST",
        "/api/contact",
        pos,
        r#"{"Name":"Ann Leeson","Email":"ann.leeson@example.com","BirthDate":"1990-02-03","MobileNumber":"79031112233"}"#,
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    child.wait().unwrap();
    assert!(log.iter().any(|l| l.contains("\"request\"")), "{log:#?}");
    for secret in [
        "79161234567",
        "hunter2-secret",
        "lt1_tok",
        "Sup3rSecretPw",
        "Ann Leeson",
        "ann.leeson@example.com",
        "1990-02-03",
        "79031112233",
    ] {
        for l in &log {
            assert!(!l.contains(secret), "{secret} reached the log: {l}");
        }
    }
    // The request log shows the body it was asked to; no other line echoes
    // what the caller sent.
    for l in log.iter().filter(|l| !l.contains(r#""message":"request""#)) {
        assert!(!l.contains("777.123456"), "raw input reached the log: {l}");
    }
}
