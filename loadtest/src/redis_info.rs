//! Redis' own counters (INFO stats) and durability settings, read over a
//! bare RESP connection, for Redis commands per request. Optional: a run
//! without `--redis` reports n/a.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `redis://host:port[/db]` or `host:port`.
fn address(url: &str) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

async fn command(url: &str, args: &[&str]) -> anyhow::Result<String> {
    let addr = address(url);
    let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr))
        .await
        .with_context(|| format!("connecting to Redis at {addr}"))??;
    let mut stream = BufReader::new(stream);
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.get_mut().write_all(req.as_bytes()).await?;
    read_reply(&mut stream).await
}

/// Bulk strings as they are; arrays as their elements one a line.
fn read_reply<'a>(
    stream: &'a mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<String>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1.min(line.len()));
        match kind {
            "+" | ":" => Ok(rest.to_owned()),
            "-" => bail!("Redis: {rest}"),
            "$" => {
                let n: i64 = rest.parse()?;
                if n < 0 {
                    return Ok(String::new());
                }
                let mut buf = vec![0; n as usize + 2];
                stream.read_exact(&mut buf).await?;
                buf.truncate(n as usize);
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            "*" => {
                let n: i64 = rest.parse()?;
                let mut parts = Vec::new();
                for _ in 0..n.max(0) {
                    parts.push(read_reply(stream).await?);
                }
                Ok(parts.join("\n"))
            }
            _ => bail!("unexpected Redis reply {line:?}"),
        }
    })
}

/// `INFO stats` as name → value.
pub async fn stats(url: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = command(url, &["INFO", "stats"]).await?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect())
}

/// `appendonly` and `appendfsync`, e.g. "aof everysec" or "no aof".
pub async fn durability(url: &str) -> anyhow::Result<String> {
    let aof = command(url, &["CONFIG", "GET", "appendonly"]).await?;
    let fsync = command(url, &["CONFIG", "GET", "appendfsync"]).await?;
    let value = |s: &str| s.lines().nth(1).unwrap_or("").to_owned();
    Ok(if value(&aof) == "yes" {
        format!("aof {}", value(&fsync))
    } else {
        "no aof".to_owned()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses() {
        assert_eq!(super::address("redis://127.0.0.1:7000/0"), "127.0.0.1:7000");
        assert_eq!(super::address("redis://u:p@h:1"), "h:1");
        assert_eq!(super::address("h:2"), "h:2");
    }
}
