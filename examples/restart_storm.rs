//! Restart storm: N tills, each with its own login, connect at once to a
//! freshly started server and then send one balance request a second each.
//! Prints how long until every till had its first answer and until the
//! per-second p99 is back under 10 ms. A measurement, not a test: run by
//! hand (loadtest/restart-storm.sh), never in CI.
//!
//!   restart_storm --bin target/release/loyalty --kind argon2|token
//!                 [--tills 2000] [--logins N] [--secs 40] [--workdir DIR]
//!
//! `--logins N` makes the tills share N logins (till i uses login i mod N):
//! `--tills 64 --logins 1` is 64 connections presenting one login.
//!
//! Starts the server itself on a free 127.0.0.1 port with a generated users
//! file, stops it at the end, and sends traffic to nothing else.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CARD: &str = "7000000000001";
const P99_TARGET: Duration = Duration::from_millis(10);

struct Args {
    bin: PathBuf,
    kind: String,
    tills: usize,
    logins: Option<usize>,
    secs: u64,
    workdir: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        bin: "target/release/loyalty".into(),
        kind: "argon2".into(),
        tills: 2000,
        logins: None,
        secs: 40,
        workdir: "target/restart-storm".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bin" => a.bin = value.into(),
            "--kind" => a.kind = value,
            "--tills" => a.tills = value.parse().expect("--tills N"),
            "--logins" => a.logins = Some(value.parse().expect("--logins N")),
            "--secs" => a.secs = value.parse().expect("--secs N"),
            "--workdir" => a.workdir = value.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        a.kind == "argon2" || a.kind == "token",
        "--kind argon2|token"
    );
    assert!(a.secs <= 300, "bounded: at most 300 s");
    a
}

/// (login, secret) per till, and the users file that accepts them. Argon2
/// files are kept between runs (hashing 2,000 passwords takes a while).
fn users_file(a: &Args) -> (Vec<(String, String)>, PathBuf) {
    std::fs::create_dir_all(&a.workdir).unwrap();
    let path = a.workdir.join(format!("users-{}-{}.toml", a.kind, a.tills));
    let tills: Vec<(String, String)> = (0..a.tills)
        .map(|i| (format!("till-{i:05}"), format!("storm-password-{i:05}")))
        .collect();
    if a.kind == "argon2" {
        if !path.exists() {
            eprintln!("hashing {} passwords (argon2id) once ...", a.tills);
            let chunks: Vec<Vec<(String, String)>> = tills
                .chunks(a.tills.div_ceil(2).max(1))
                .map(<[_]>::to_vec)
                .collect();
            let parts: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = chunks
                    .iter()
                    .map(|chunk| {
                        s.spawn(move || {
                            chunk
                                .iter()
                                .map(|(login, pw)| {
                                    let hash = loyalty::api::auth::hash_password(pw).unwrap();
                                    format!("[[users]]\nlogin = \"{login}\"\nrole = \"pos\"\npassword_hash = \"{hash}\"\n\n")
                                })
                                .collect::<String>()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            std::fs::write(&path, parts.concat()).unwrap();
        }
        (tills, path)
    } else {
        let mut file = std::fs::File::create(&path).unwrap();
        let tills = tills
            .into_iter()
            .map(|(login, _)| {
                let (token, sha) = loyalty::api::till_token::issue();
                writeln!(
                    file,
                    "[[users]]\nlogin = \"{login}\"\nrole = \"pos\"\ntoken_sha256 = \"{sha}\"\n"
                )
                .unwrap();
                (login, token)
            })
            .collect();
        (tills, path)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Server {
    /// CPU seconds the server used so far (user + system), from /proc: a
    /// number that noise from other processes on the machine barely moves.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat (12 and 13 here).
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(bin: &Path, users: &Path, port: u16) -> Server {
    let child = Command::new(bin)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__AUTH__USERS_FILE", users)
        .env("LOYALTY__DEMO__DATA_FILE", "config/demo-data.json")
        .env("LOYALTY__LOG__LEVEL", "error")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts");
    Server(child)
}

/// One HTTP/1.1 request on a kept-alive connection; the status code.
async fn request(conn: &mut BufReader<TcpStream>, auth: &str, port: u16) -> std::io::Result<u16> {
    let req = format!(
        "GET /api/card/balance/by/{CARD} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\r\n"
    );
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
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
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

struct Sample {
    /// Since the storm started.
    sent_at: Duration,
    latency: Duration,
    status: u16,
    first: bool,
}

async fn till(
    port: u16,
    auth: String,
    start: Instant,
    end: Instant,
    samples: Arc<parking_lot::Mutex<Vec<Sample>>>,
    failures: Arc<std::sync::atomic::AtomicUsize>,
    index: usize,
) {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut conn = BufReader::new(stream);
    let mut first = true;
    // Spread the steady-state requests over the second, as real tills are.
    let offset = Duration::from_millis((index * 997 % 1000) as u64);
    let mut next = Instant::now();
    while Instant::now() < end {
        let sent = Instant::now();
        let status = match request(&mut conn, &auth, port).await {
            Ok(s) => s,
            Err(_) => {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        };
        samples.lock().push(Sample {
            sent_at: sent - start,
            latency: sent.elapsed(),
            status,
            first,
        });
        if first {
            next = sent + offset;
            first = false;
        }
        // One request a second; a late till does not catch up in a burst.
        next = (next + Duration::from_secs(1)).max(Instant::now());
        tokio::time::sleep_until(next.into()).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let a = args();
    let (logins, users) = users_file(&a);
    let shared = a.logins.unwrap_or(a.tills).clamp(1, a.tills);
    let tills: Vec<(String, String)> = (0..a.tills).map(|i| logins[i % shared].clone()).collect();
    let port = free_port();
    let server = start_server(&a.bin, &users, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cpu_at_start = server.cpu_secs();
    let samples = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(a.secs);
    runtime.block_on(async {
        let tasks: Vec<_> = tills
            .iter()
            .enumerate()
            .map(|(i, (login, secret))| {
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{secret}"));
                tokio::spawn(till(
                    port,
                    auth,
                    start,
                    end,
                    samples.clone(),
                    failures.clone(),
                    i,
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    println!(
        "server CPU during the run: {:.1} s",
        server.cpu_secs() - cpu_at_start
    );
    report(
        &a,
        &samples.lock(),
        failures.load(std::sync::atomic::Ordering::Relaxed),
    );
}

fn report(a: &Args, samples: &[Sample], failures: usize) {
    let firsts: Vec<&Sample> = samples.iter().filter(|s| s.first).collect();
    let answered_all = firsts
        .iter()
        .map(|s| s.sent_at + s.latency)
        .max()
        .unwrap_or_default();
    let mut first_latencies: Vec<Duration> = firsts.iter().map(|s| s.latency).collect();
    first_latencies.sort();
    let not_ok = samples.iter().filter(|s| s.status != 200).count();
    // p99 per one-second window of send time; "back under" = the first
    // window from which every later full window stays under the target.
    let windows = a.secs as usize;
    let mut per_window: Vec<Vec<Duration>> = vec![Vec::new(); windows];
    for s in samples {
        let w = s.sent_at.as_secs() as usize;
        if w < windows {
            per_window[w].push(s.latency);
        }
    }
    let p99s: Vec<Duration> = per_window
        .iter_mut()
        .map(|w| {
            w.sort();
            percentile(w, 0.99)
        })
        .collect();
    let full = windows.saturating_sub(1);
    let recovered = (0..full).find(|&i| p99s[i..full].iter().all(|p| *p < P99_TARGET));
    let first_under = (0..full).find(|&i| p99s[i] < P99_TARGET);
    println!(
        "kind={} tills={} first answers: {}/{} ; all answered after {:.2} s ; first-answer p50 {:.0} ms p99 {:.0} ms max {:.0} ms ; non-200 {} of {} ; connections failed {} ; p99 first under 10 ms in second {} and stays under from second {}",
        a.kind,
        a.tills,
        firsts.len(),
        a.tills,
        answered_all.as_secs_f64(),
        percentile(&first_latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&first_latencies, 0.99).as_secs_f64() * 1e3,
        first_latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        not_ok,
        samples.len(),
        failures,
        first_under.map_or("never".into(), |s| s.to_string()),
        recovered.map_or("never (within the run)".into(), |s| s.to_string()),
    );
    let shown: Vec<String> = p99s
        .iter()
        .map(|p| format!("{:.0}", p.as_secs_f64() * 1e3))
        .collect();
    println!("p99 per second (ms): {}", shown.join(" "));
}
