//! Redis memory per purchase, during the idempotency retention and after
//! it, with the change stream and the archive running (issue 14). A
//! measurement, not a test: run by hand (loadtest/purchase-memory.sh).
//!
//!   purchase_memory --bin target/release/loyalty [--purchases 100000]
//!                   [--cards 100] [--retention-secs 60] [--concurrency 64]
//!   purchase_memory --bin target/release/loyalty --pos-mix 60s
//!                   [--loadtest target/release/loyalty-loadtest]
//!
//! Starts its own redis-server (AOF `appendfsync always`), PostgreSQL
//! (Debian's binaries), the server and `loyalty archive`, all on free
//! 127.0.0.1 ports in a temp dir; loads and issues the cards, then confirms
//! the purchases. Reports `INFO memory` used_memory deltas per purchase
//! right after the confirms (within the retention) and once the retention
//! has passed and the archive has caught up, the part of them that is the
//! card records (which hold each purchase's accrual lot until it expires),
//! history entries per card in Redis, and the archive's lag and throughput
//! (from its progress lines).
//!
//! With `--pos-mix RUN_TIME` it measures the archive's lag under the till
//! fleet's mix instead: `loyalty-loadtest prepare` and then `run pos-mix`
//! (the load test's defaults: 100,000 cards, 32 users) against the same
//! set-up, and the archive's progress lines of the run's windows.

#[path = "../tests/common/postgres_server.rs"]
mod postgres_server;
// Borrowed from the tests for one server: the cluster helpers are theirs.
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres_server::PostgresServer;
use redis_server::{free_port, RedisServer};
use serde_json::{json, Value};

struct Args {
    bin: PathBuf,
    purchases: u64,
    cards: u64,
    retention_secs: u64,
    concurrency: usize,
    pos_mix: Option<String>,
    loadtest: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        bin: "target/release/loyalty".into(),
        purchases: 100_000,
        cards: 100,
        retention_secs: 60,
        concurrency: 64,
        pos_mix: None,
        loadtest: "target/release/loyalty-loadtest".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--bin" => a.bin = value.into(),
            "--purchases" => a.purchases = value.parse().expect("--purchases N"),
            "--cards" => a.cards = value.parse().expect("--cards N"),
            "--retention-secs" => a.retention_secs = value.parse().expect("--retention-secs N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--pos-mix" => a.pos_mix = Some(value),
            "--loadtest" => a.loadtest = value.into(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A child process that is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, what: &str, config: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(bin)
            .arg(what)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(log).expect("a log")))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(log)
                    .expect("a log"),
            ))
            .spawn()
            .expect("start loyalty"),
    )
}

fn redis_int(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> i64 {
    cmd.query::<i64>(con).expect("a Redis answer")
}

fn used_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(con)
        .expect("INFO memory");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// Bytes of the card records (their JSON holds the accrual lots).
fn card_bytes(con: &mut redis::Connection, prefix: &str, cards: &[String]) -> i64 {
    cards
        .iter()
        .map(|n| {
            redis_int(
                con,
                redis::cmd("HSTRLEN")
                    .arg(format!("{prefix}:card:{{{n}}}"))
                    .arg("d"),
            )
        })
        .sum()
}

/// The archive's lag under `loyalty-loadtest run pos-mix`: prepares its
/// data set, runs it, waits for the archive to drain and prints the
/// progress lines of the windows that ended during the run, with the worst
/// and the median of their p99.
fn pos_mix(loadtest: &Path, base: &str, run_time: &str, dir: &Path) {
    let now = || {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time")
    };
    let loadtest = |args: &[&str]| {
        let ok = Command::new(loadtest)
            .args(args)
            .args(["--host", base])
            .status()
            .expect("run loyalty-loadtest")
            .success();
        assert!(ok, "loyalty-loadtest {args:?} failed");
    };
    loadtest(&["prepare"]);
    // The archive takes the prepared data set first.
    std::thread::sleep(Duration::from_secs(20));
    let (start, out) = (now(), dir.join("pos-mix"));
    loadtest(&[
        "run",
        "pos-mix",
        "--run-time",
        run_time,
        "--yardstick-secs",
        "5",
        "--backend",
        "redis",
        "--fsync",
        "always",
        "--output-dir",
        out.to_str().expect("a UTF-8 path"),
    ]);
    let end = now();
    std::thread::sleep(Duration::from_secs(15));
    let log = std::fs::read_to_string(dir.join("archive.log")).unwrap_or_default();
    let mut p99s = Vec::new();
    println!("archive progress during pos-mix ({start} .. {end}):");
    for line in log.lines().filter(|l| l.contains("archive: progress")) {
        let line = strip_ansi(line);
        let at = line.split_whitespace().next().unwrap_or_default();
        if at > start.as_str() && at <= end.as_str() {
            println!("  {line}");
            p99s.extend(field(&line, "lag_p99_ms"));
        }
    }
    p99s.sort_unstable();
    if let (Some(worst), Some(median)) = (p99s.last(), p99s.get(p99s.len() / 2)) {
        println!(
            "archive lag under pos-mix: p99 of each 10 s window, worst {worst} ms, median {median} ms ({} windows)",
            p99s.len()
        );
    }
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape runs to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A numeric field (`name=123`) of a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Bytes of db 0's key space and expiry table themselves (MEMORY STATS).
fn hashtable_overhead(con: &mut redis::Connection) -> i64 {
    let stats: redis::Value = redis::cmd("MEMORY")
        .arg("STATS")
        .query(con)
        .expect("MEMORY STATS");
    // db.0 is a map of overhead.hashtable.main and .expires.
    let text = format!("{stats:?}");
    ["overhead.hashtable.main", "overhead.hashtable.expires"]
        .iter()
        .filter_map(|name| {
            let rest = &text[text.find(name)? + name.len()..];
            let digits: String = rest
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<i64>().ok()
        })
        .sum()
}

fn keys(con: &mut redis::Connection) -> i64 {
    redis_int(con, &mut redis::cmd("DBSIZE"))
}

#[tokio::main]
async fn main() {
    let a = args();
    let work = tempfile::tempdir().expect("a temp dir");
    let dir = work.path();
    // AOF fsynced on every write, as deploy/redis/redis.conf.
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let redis = RedisServer::start(&dir.join("redis"), free_port(false), &aof, None);
    let postgres = PostgresServer::start(&dir.join("pg"), free_port(false));
    let http_port = free_port(false);
    let prefix = "mem";
    let config = dir.join("loyalty.toml");
    let users = std::fs::canonicalize("config/demo-users.toml").expect("run from the project");
    std::fs::write(
        &config,
        format!(
            "[http]\nbind = \"127.0.0.1:{http_port}\"\n\
             [store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n\
             [auth]\nusers_file = \"{users}\"\n\
             [engine]\nclaim_lease_ms = 1000\n\
             [bonus]\nidempotency_retention_secs = {ret}\npurchase_date_max_age_secs = {ret}\n\
             [archive]\npostgres_url = \"{pg}\"\n[events]\nstream_max_len = 100\n\
             [log]\nlevel = \"info\"\n[demo]\ndata_file = \"\"\n",
            url = redis.url(),
            users = users.display(),
            ret = a.retention_secs,
            pg = postgres.url(),
        ),
    )
    .expect("write the config");
    let _server = spawn(&a.bin, "serve", &config, &dir.join("server.log"));
    let _archiver = spawn(&a.bin, "archive", &config, &dir.join("archive.log"));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    let mut up = false;
    for _ in 0..300 {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not get ready");
    if let Some(run_time) = &a.pos_mix {
        pos_mix(&a.loadtest, &base, run_time, dir);
        return;
    }

    let cards: Vec<String> = (0..a.cards).map(|i| format!("7100{i:09}")).collect();
    let load: Vec<Value> = cards
        .iter()
        .map(|n| json!({"Number": n, "CategoryCode": "0", "TypeCode": "0"}))
        .collect();
    http.post(format!("{base}/api/admin/cards"))
        .basic_auth("admin", Some("admin-demo"))
        .json(&load)
        .send()
        .await
        .expect("load cards");
    for n in &cards {
        http.post(format!("{base}/api/card/issue"))
            .basic_auth("admin", Some("admin-demo"))
            .json(&json!({"Number": n}))
            .send()
            .await
            .expect("issue");
    }

    let mut con = redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_connection()
        .expect("connects");
    // Let the archive take the loads and issues first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = used_memory(&mut con);
    let tables_before = hashtable_overhead(&mut con);
    let cards_before = card_bytes(&mut con, prefix, &cards);
    let keys_before = keys(&mut con);

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (http, base, next, failed, cards) = (
                http.clone(),
                base.clone(),
                next.clone(),
                failed.clone(),
                cards.clone(),
            );
            let total = a.purchases;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let number = &cards[(i % cards.len() as u64) as usize];
                    let answer = http
                        .post(format!("{base}/api/purchase/confirm"))
                        .basic_auth("pos", Some("pos-demo"))
                        .json(&json!({
                            "Number": number,
                            "PurchaseId": format!("bench-{i}"),
                            "Amount": 100.0,
                        }))
                        .send()
                        .await;
                    let failure = match answer {
                        Ok(r) if r.status().is_success() => None,
                        Ok(r) => Some(format!(
                            "HTTP {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(why) = failure {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("a confirm failed: {why}");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a worker");
    }
    let took = started.elapsed();
    let confirmed = Instant::now();
    let n = a.purchases as f64;
    let failures = failed.load(Ordering::Relaxed);
    println!(
        "confirmed {} purchases on {} cards in {:.1} s ({:.0}/s), {failures} failed",
        a.purchases,
        a.cards,
        took.as_secs_f64(),
        n / took.as_secs_f64()
    );

    // Within the retention (the archive keeps up meanwhile).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = used_memory(&mut con);
    let cards_during = card_bytes(&mut con, prefix, &cards);
    println!(
        "within retention: {:.0} B/purchase in all, of which card records (lots) {:.0} B; {:.0} B/purchase without the lots; keys +{}",
        (during - before) as f64 / n,
        (cards_during - cards_before) as f64 / n,
        ((during - before) - (cards_during - cards_before)) as f64 / n,
        keys(&mut con) - keys_before,
    );

    // After the retention of the last purchase (and the claim lease, 1 s,
    // that its index entry outlives it by): outcomes and PurchaseId index
    // entries expire (Redis removes them lazily and by its active expiry
    // cycle, which the loop below waits for).
    let wait = Duration::from_secs(a.retention_secs + 2).saturating_sub(confirmed.elapsed());
    tokio::time::sleep(wait).await;
    for _ in 0..120 {
        if keys(&mut con) <= keys_before + 16 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Redis may then shrink the key space's and the expiry table's bucket
    // arrays (sized for every purchase's keys: 8 B a bucket) in its cron —
    // only tables under 10 % full; measure once used_memory has settled.
    let mut after = used_memory(&mut con);
    println!(
        "keys gone: {:.1} B/purchase in all, of which the growth of the key space's bucket arrays {:.1} B",
        (after - before) as f64 / n,
        (hashtable_overhead(&mut con) - tables_before) as f64 / n,
    );
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = used_memory(&mut con);
        let settled = (after - now).abs() < 4096;
        after = now;
        if settled {
            break;
        }
    }
    let cards_after = card_bytes(&mut con, prefix, &cards);
    // Redis shrinks a key space's table only below 10 % full: the table
    // sized for every purchase's keys may stay (8 B a slot), whatever the
    // number of purchases since.
    let tables = hashtable_overhead(&mut con) - tables_before;
    println!(
        "after retention: the key space's and expiry table's growth {:.1} B/purchase ({} B: sized for the peak key count, not per purchase kept); {:.1} B/purchase without it",
        tables as f64 / n,
        tables,
        ((after - before) - tables) as f64 / n,
    );
    println!(
        "after retention: {:.1} B/purchase in all, of which card records (lots) {:.1} B; {:.1} B/purchase without the lots; keys +{}",
        (after - before) as f64 / n,
        (cards_after - cards_before) as f64 / n,
        ((after - before) - (cards_after - cards_before)) as f64 / n,
        keys(&mut con) - keys_before,
    );
    let longest = cards
        .iter()
        .map(|c| {
            redis_int(
                &mut con,
                redis::cmd("LLEN").arg(format!("{prefix}:card:{{{c}}}:history")),
            )
        })
        .max()
        .unwrap_or(0);
    println!("history entries per card in Redis: at most {longest}");
    let log = std::fs::read_to_string(dir.join("archive.log")).unwrap_or_default();
    println!("archive progress (every 10 s: events, events/s, lag p50/p99/max):");
    for line in log.lines().filter(|l| l.contains("archive: progress")) {
        println!("  {line}");
    }
}
