//! Loads N cards into a running server and reads each one's balance once,
//! so that every card sits in the record cache: the load behind
//! `loadtest/cache-rss.sh` (server RSS per cached card). A measurement
//! tool, not a test; it talks to 127.0.0.1 only.
//!
//!   cache_fill --port PORT --cards 1000000 [--connections 64] [--first 7100000000000]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    port: u16,
    cards: u64,
    connections: u64,
    first: u64,
}

fn args() -> Args {
    let mut a = Args {
        port: 0,
        cards: 1_000_000,
        connections: 64,
        first: 7_100_000_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--port" => a.port = v.parse().expect("--port N"),
            "--cards" => a.cards = v.parse().expect("--cards N"),
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--first" => a.first = v.parse().expect("--first N"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.port != 0, "--port PORT");
    a
}

fn auth(login: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{login}-demo"))
}

/// One request on a keep-alive connection; answers the status.
async fn request(conn: &mut BufReader<TcpStream>, head: &str, body: &[u8]) -> std::io::Result<u16> {
    conn.get_mut().write_all(head.as_bytes()).await?;
    conn.get_mut().write_all(body).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut rest = vec![0; length];
    conn.read_exact(&mut rest).await?;
    Ok(status)
}

async fn connect(port: u16) -> BufReader<TcpStream> {
    BufReader::new(
        TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("the server listens"),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Arc::new(args());
    let started = Instant::now();
    let mut conn = connect(a.port).await;
    let admin = auth("admin");
    for chunk_start in (0..a.cards).step_by(10_000) {
        let end = (chunk_start + 10_000).min(a.cards);
        let cards: Vec<_> = (chunk_start..end)
            .map(|i| serde_json::json!({"Number": (a.first + i).to_string(), "CategoryCode": 0, "TypeCode": 0}))
            .collect();
        let body = serde_json::to_vec(&cards).expect("json");
        let head = format!(
            "POST /api/admin/cards HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let status = request(&mut conn, &head, &body).await.expect("load");
        assert_eq!(status, 200, "loading cards {chunk_start}..{end}");
    }
    println!(
        "loaded {} cards in {:.1} s",
        a.cards,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let pos = auth("pos");
    let readers: Vec<_> = (0..a.connections)
        .map(|_| {
            let (a, next, failed, pos) = (a.clone(), next.clone(), failed.clone(), pos.clone());
            tokio::spawn(async move {
                let mut conn = connect(a.port).await;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.cards {
                        break;
                    }
                    let head = format!(
                        "GET /api/card/balance/by/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {pos}\r\n\r\n",
                        a.first + i
                    );
                    if request(&mut conn, &head, b"").await.ok() != Some(200) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.await.expect("reader");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "read {} balances in {secs:.1} s ({:.0}/s), {} not 200",
        a.cards,
        a.cards as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
}
