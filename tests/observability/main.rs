//! The dashboard and the alert rules, proven against a real Prometheus.
//!
//! Starts redis-server (with the shipped `deploy/redis/redis.conf`), two
//! `loyalty` servers on it (the scale-out shape; the second with one shard
//! and a queue of one, so that shard rejections can be provoked),
//! redis_exporter and Prometheus with the shipped `deploy/prometheus`
//! config (targets rewritten to local ports, intervals to 1s). Drives a
//! little traffic of every kind, including errors, shard rejections and a
//! Redis outage, then evaluates through Prometheus' HTTP API:
//! - every query of every panel of `deploy/grafana/*.json`: it must parse
//!   and return at least one series, and so must each vector selector in it;
//! - every recording rule: at least one series;
//! - every alert rule: healthy, and each vector selector it reads returns at
//!   least one series; LoyaltyNotReady and LoyaltyInstanceDown are seen
//!   pending live (the `promtool test rules` unit tests prove the rest of
//!   the firing logic, see scripts/check-deploy.sh).
//!
//! A test binary of its own without the libtest harness: one scenario, its
//! report printed as it goes. Needs `prometheus`, `promtool`,
//! `prometheus-redis-exporter` and `redis-server` (scripts/test.sh installs
//! them), so like the tests of the other services it is ignored unless
//! asked for with `--include-ignored` or `--ignored` (as scripts/test.sh
//! does, docs/testing.md); asked for, a missing tool fails the run.

mod dashboard;
mod procs;
mod prom;
mod promql;
mod traffic;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use procs::{free_port, on_path, Proc};
use prom::Prom;
use traffic::{Api, Ids};

const TOOLS: &[&str] = &[
    "prometheus",
    "promtool",
    "prometheus-redis-exporter",
    "redis-server",
];

#[derive(Default)]
struct Report {
    passed: usize,
    failures: Vec<String>,
}

impl Report {
    fn ok(&mut self, line: String) {
        self.passed += 1;
        println!("  ok    {line}");
    }
    fn fail(&mut self, line: String) {
        println!("  FAIL  {line}");
        self.failures.push(line);
    }
    fn check(&mut self, good: bool, line: String) {
        if good {
            self.ok(line)
        } else {
            self.fail(line)
        }
    }
}

/// Every process of the run; their logs are shown if the run panics.
#[derive(Default)]
struct Stack {
    procs: Vec<Proc>,
}

impl Stack {
    fn get(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a process of the run")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.procs {
                eprintln!(
                    "--- last lines of {} ({}):\n{}",
                    p.name,
                    p.log.display(),
                    p.log_tail(30)
                );
            }
        }
    }
}

fn main() {
    let started = Instant::now();
    promql::self_check();
    let asked = std::env::args().any(|a| a == "--include-ignored" || a == "--ignored");
    if !asked {
        println!(
            "observability: ignored, needs prometheus, promtool, prometheus-redis-exporter and redis-server \
             (run it with: cargo test --test observability -- --include-ignored; scripts/test.sh does)"
        );
        println!("observability: 0 passed, 0 failed, 1 ignored");
        return;
    }
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        eprintln!(
            "observability: missing {missing:?}. scripts/test.sh installs them (Debian packages prometheus, prometheus-redis-exporter, redis-server); this test does not skip."
        );
        println!("observability: 0 passed, 1 failed");
        std::process::exit(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut report = Report::default();
    rt.block_on(run(&mut report));
    println!(
        "observability: proven in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "observability: {} passed, {} failed",
        report.passed,
        report.failures.len()
    );
    if !report.failures.is_empty() {
        eprintln!("failures:\n  {}", report.failures.join("\n  "));
        std::process::exit(1);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Polls `f` every 200 ms until it holds or `secs` have passed.
async fn wait_for<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The shipped Prometheus config with its targets rewritten to this run's
/// ports and its intervals to 1s. Each rewrite must apply exactly once: a
/// changed shipped file fails here instead of being half-rewritten.
fn templated_config(shipped: &str, loyalty: &[u16], exporter: u16) -> String {
    let targets: Vec<String> = loyalty
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let rewrites = [
        ("scrape_interval: 10s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 10s",
            "evaluation_interval: 1s".to_owned(),
        ),
        ("scrape_timeout: 5s", "scrape_timeout: 1s".to_owned()),
        (
            "targets: [\"loyalty:8080\"]",
            format!("targets: [{}]", targets.join(", ")),
        ),
        (
            "targets: [\"redis-exporter:9121\"]",
            format!("targets: [\"127.0.0.1:{exporter}\"]"),
        ),
    ];
    let mut out = shipped.to_owned();
    for (from, to) in rewrites {
        assert_eq!(
            out.matches(from).count(),
            1,
            "deploy/prometheus/prometheus.yml: expected `{from}` exactly once (update tests/observability/main.rs with the shipped file)"
        );
        out = out.replace(from, &to);
    }
    out
}

async fn run(report: &mut Report) {
    let root = root();
    let tmp = tempfile::Builder::new()
        .prefix("loyalty-observability-")
        .tempdir()
        .expect("a temp dir");
    let dir = tmp.path();
    let mut stack = Stack::default();

    println!("== starting redis-server (deploy/redis/redis.conf), 2 loyalty servers, redis_exporter, Prometheus in {}", dir.display());
    let redis_port = free_port();
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    let redis_args: Vec<String> = [
        root.join("deploy/redis/redis.conf").display().to_string(),
        "--port".into(),
        redis_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--dir".into(),
        redis_dir.display().to_string(),
        "--supervised".into(),
        "no".into(),
        "--daemonize".into(),
        "no".into(),
        // maxmemory as the compose file sets it: what the memory panel and
        // LoyaltyRedisMemoryNearMax divide by.
        "--maxmemory".into(),
        "256mb".into(),
    ]
    .to_vec();
    stack.procs.push(Proc::start(
        "redis",
        dir,
        "redis-server",
        &redis_args,
        &[],
        &root,
    ));
    assert!(
        wait_for(15, || async { redis_ping(redis_port) }).await,
        "redis-server with deploy/redis/redis.conf did not start"
    );
    report.ok(format!(
        "redis-server runs with deploy/redis/redis.conf (AOF, noeviction) on :{redis_port}"
    ));

    let exporter_port = free_port();
    stack.procs.push(Proc::start(
        "redis_exporter",
        dir,
        "prometheus-redis-exporter",
        &[
            "-redis.addr".into(),
            format!("redis://127.0.0.1:{redis_port}"),
            "-web.listen-address".into(),
            format!("127.0.0.1:{exporter_port}"),
        ],
        &[],
        &root,
    ));

    // A: the normal shape. B: one shard with a queue of one, to provoke
    // 503 Overloaded with a little concurrency.
    let (port_a, port_b) = (free_port(), free_port());
    for (name, port, shards, capacity) in [
        ("loyalty-a", port_a, "4", "4096"),
        ("loyalty-b", port_b, "1", "1"),
    ] {
        let env: Vec<(String, String)> = [
            ("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}")),
            ("LOYALTY__HTTP__WORKERS", "2".into()),
            ("LOYALTY__ENGINE__THREADS", "1".into()),
            ("LOYALTY__ENGINE__SHARDS", shards.into()),
            ("LOYALTY__ENGINE__SHARD_QUEUE_CAPACITY", capacity.into()),
            ("LOYALTY__STORE__BACKEND", "redis".into()),
            (
                "LOYALTY__STORE__URL",
                format!("redis://127.0.0.1:{redis_port}/0"),
            ),
            (
                "LOYALTY__STORE__KEY_PREFIX",
                format!("obs{}", std::process::id()),
            ),
            ("LOYALTY__STORE__COMMAND_TIMEOUT_MS", "300".into()),
            ("LOYALTY__STORE__CONNECT_TIMEOUT_MS", "300".into()),
            ("LOYALTY__LOG__FORMAT", "json".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        stack.procs.push(Proc::start(
            name,
            dir,
            env!("CARGO_BIN_EXE_loyalty"),
            &["serve".into()],
            &env,
            &root,
        ));
    }
    let (a, b) = (Api::new(port_a), Api::new(port_b));
    for (name, api) in [("loyalty-a", &a), ("loyalty-b", &b)] {
        let up = wait_for(60, || async { api.status_of("/ready").await == Some(200) }).await;
        assert!(up, "{name} never became ready");
        report.ok(format!("{name} serves on {} and is ready", api.base));
    }

    // Prometheus with the shipped config, rules next to it as shipped.
    let prom_dir = dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("prometheus dir");
    let shipped = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("read deploy/prometheus/prometheus.yml");
    let config = templated_config(&shipped, &[port_a, port_b], exporter_port);
    std::fs::write(prom_dir.join("prometheus.yml"), config).expect("write the config");
    for rules in ["slo.yml", "alerts.yml"] {
        std::fs::copy(
            root.join("deploy/prometheus").join(rules),
            prom_dir.join(rules),
        )
        .expect("copy a rule file");
    }
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(prom_dir.join("prometheus.yml"))
        .output()
        .expect("run promtool");
    report.check(
        check.status.success(),
        format!(
            "promtool check config on the templated shipped config{}",
            if check.status.success() {
                String::new()
            } else {
                format!(": {}", String::from_utf8_lossy(&check.stdout))
            }
        ),
    );
    let prom_port = free_port();
    stack.procs.push(Proc::start(
        "prometheus",
        dir,
        "prometheus",
        &[
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".into(),
        ],
        &[],
        &prom_dir,
    ));
    let prom = Prom::new(prom_port);
    assert!(
        wait_for(30, || async { prom.ready().await }).await,
        "Prometheus did not become ready"
    );
    let all_up = wait_for(20, || async {
        prom.targets()
            .await
            .is_ok_and(|t| t.len() == 3 && t.iter().all(|t| t["health"] == "up"))
    })
    .await;
    let targets = prom.targets().await.unwrap_or_default();
    report.check(
        all_up,
        format!(
            "Prometheus on :{prom_port} scrapes every target: {}",
            targets
                .iter()
                .map(|t| format!(
                    "{}/{}={}",
                    t["labels"]["job"].as_str().unwrap_or("?"),
                    t["labels"]["instance"].as_str().unwrap_or("?"),
                    t["health"].as_str().unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    println!("== traffic: data loading, lifecycle, balances, purchases, replacement, errors");
    let mut ids = Ids::new();
    traffic::business(&a, &mut ids).await;
    traffic::errors(&a, &mut ids).await;
    traffic::business(&b, &mut ids).await;
    traffic::errors(&b, &mut ids).await;
    report.ok("business traffic and refusals of every kind on both instances".into());

    println!("== shard rejections on loyalty-b (1 shard, queue of 1)");
    let (hot, _, _) = traffic::active_card(&b, &mut ids).await;
    let hot_path = format!("/api/card/balance/by/{hot}");
    let (mut sent, mut overloaded) = (0, 0);
    for _ in 0..20 {
        let answers = join_all((0..64).map(|_| b.get("pos", &hot_path))).await;
        for r in &answers {
            sent += 1;
            match (r.status, r.key()) {
                (200, "OK") => {}
                (503, "Overloaded") => overloaded += 1,
                (s, k) => panic!("a hot card answered {s} {k}: {}", r.body),
            }
        }
        if overloaded > 0 {
            break;
        }
    }
    report.check(
        overloaded > 0,
        format!(
            "{overloaded} of {sent} concurrent balance reads on one shard answered 503 Overloaded"
        ),
    );

    println!("== Redis stopped: every route class answers 503, /ready 503");
    stack.get("redis").stop();
    for (name, api) in [("loyalty-a", &a), ("loyalty-b", &b)] {
        let seen = traffic::during_outage(api, &mut ids).await;
        report.ok(format!(
            "{name} with Redis stopped: {}",
            seen.iter()
                .map(|(c, s, k)| format!("{c} {s} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let not_ready = wait_for(20, || async {
        prom.count("loyalty_store_up == 0").await == Ok(2)
            && alert_instances(&prom, "LoyaltyNotReady").await.len() == 2
    })
    .await;
    report.check(
        not_ready,
        format!(
            "live: loyalty_store_up == 0 on both instances and LoyaltyNotReady {:?}",
            alert_instances(&prom, "LoyaltyNotReady").await
        ),
    );
    stack.get("redis").restart();
    assert!(
        wait_for(15, || async { redis_ping(redis_port) }).await,
        "redis-server did not restart"
    );
    for (name, api) in [("loyalty-a", &a), ("loyalty-b", &b)] {
        let back = wait_for(30, || async { api.status_of("/ready").await == Some(200) }).await;
        report.check(
            back,
            format!("{name} ready again after Redis restarted, without a restart of its own"),
        );
    }
    let recovered = wait_for(20, || async {
        prom.count("loyalty_store_up == 1").await == Ok(2)
    })
    .await;
    report.check(
        recovered,
        "live: loyalty_store_up back to 1 on both instances".into(),
    );
    traffic::business(&a, &mut ids).await;
    // Three more scrapes and rule evaluations over the final state.
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!("== every dashboard query through Prometheus' HTTP API");
    for q in dashboard::queries(&root.join("deploy/grafana")) {
        let what = format!(
            "{} panel {} \"{}\" {}",
            q.dashboard, q.panel_id, q.panel, q.ref_id
        );
        let expr = match dashboard::expand(&q.expr) {
            Ok(e) => e,
            Err(e) => {
                report.fail(format!("{what}: {e}"));
                continue;
            }
        };
        let empty_selectors = empty_selectors(&prom, &expr).await;
        match prom.query(&expr).await {
            Ok(series) if !series.is_empty() && empty_selectors.is_empty() => {
                report.ok(format!("{what}: {} series", series.len()))
            }
            Ok(series) => report.fail(format!(
                "{what}: {} series; selectors without series: {empty_selectors:?} (expr {expr})",
                series.len()
            )),
            Err(e) => report.fail(format!("{what}: {e} (expr {expr})")),
        }
    }

    println!("== rules loaded by Prometheus: recording rules return series, alert rules read existing series");
    let rules = prom.rules().await.expect("the rules API answers");
    let mut recorded: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    let mut alerts = Vec::new();
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?").to_owned();
        if rule["health"] != "ok" {
            report.fail(format!(
                "rule {name}: health {} {}",
                rule["health"], rule["lastError"]
            ));
        }
        match rule["type"].as_str() {
            Some("recording") => {
                let labels = label_matchers(&rule["labels"]);
                let selector = format!("{name}{{{labels}}}");
                let n = prom.count(&selector).await.unwrap_or(0);
                // `or vector(0)` in an SLI would hide a selector that
                // matches nothing: each is queried on its own too.
                let empty = empty_selectors(&prom, rule["query"].as_str().unwrap_or("")).await;
                let entry = recorded.entry(name).or_default();
                entry.0 += 1;
                entry.1 += n;
                if n == 0 {
                    entry.2.push(selector);
                }
                entry.2.extend(empty);
            }
            _ => alerts.push(rule.clone()),
        }
    }
    for (name, (rules, series, empty)) in recorded {
        report.check(
            empty.is_empty(),
            format!(
                "recording {name}: {rules} rules, {series} series, {}",
                if empty.is_empty() {
                    "every selector inside returns series".to_owned()
                } else {
                    format!("WITHOUT SERIES: {empty:?}")
                }
            ),
        );
    }
    for rule in &alerts {
        let name = rule["name"].as_str().unwrap_or("?");
        let expr = rule["query"].as_str().unwrap_or("");
        let mut counts = Vec::new();
        let mut empty = Vec::new();
        for s in promql::selectors(expr) {
            let n = prom.count(&s).await.unwrap_or(0);
            if n == 0 {
                empty.push(s.clone());
            }
            counts.push(format!("{s}: {n}"));
        }
        let now = prom.count(expr).await;
        report.check(
            !counts.is_empty() && empty.is_empty(),
            format!(
                "alert {name} [{}]: selectors {} | expression now {} series, state {}{}",
                rule["labels"]["severity"].as_str().unwrap_or("?"),
                counts.join(", "),
                now.map_or_else(|e| e, |n| n.to_string()),
                rule["state"].as_str().unwrap_or("?"),
                if empty.is_empty() {
                    String::new()
                } else {
                    format!("; WITHOUT SERIES: {empty:?}")
                }
            ),
        );
    }

    println!("== loyalty-b stopped: LoyaltyInstanceDown goes pending");
    stack.get("loyalty-b").stop();
    let down = wait_for(20, || async {
        alert_instances(&prom, "LoyaltyInstanceDown").await == vec![format!("127.0.0.1:{port_b}")]
    })
    .await;
    report.check(
        down,
        format!(
            "live: up{{job=\"loyalty\"}} == 0 for loyalty-b and LoyaltyInstanceDown {:?}",
            alert_instances(&prom, "LoyaltyInstanceDown").await
        ),
    );
    drop(stack);
    drop(tmp);
}

/// Instances for which `alert` is pending or firing now.
async fn alert_instances(prom: &Prom, alert: &str) -> Vec<String> {
    let mut v: Vec<String> = prom
        .alerts()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == alert)
        .map(|a| a["labels"]["instance"].as_str().unwrap_or("?").to_owned())
        .collect();
    v.sort();
    v
}

async fn empty_selectors(prom: &Prom, expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in promql::selectors(expr) {
        if prom.count(&s).await.unwrap_or(0) == 0 {
            out.push(s);
        }
    }
    out
}

fn label_matchers(labels: &Value) -> String {
    labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").to_owned())))
        .collect::<Vec<_>>()
        .join(",")
}
