//! One run: the `/health` yardstick, then the scenario, with `/metrics`
//! (and Redis INFO) read before and after the scenario; then the report
//! and the thresholds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use goose::config::GooseConfiguration;
use goose::metrics::GooseRequestMetricTimingData;
use goose::prelude::*;
use goose::test_plan::TestPlanStepAction;

use crate::calls::Timeline;
use crate::client::{Api, Creds};
use crate::dataset::{Dataset, DatasetArgs};
use crate::prepare;
use crate::promtext::Scrape;
use crate::redis_info;
use crate::report::{
    Check, ClientSide, ErrorRow, RequestRow, ServerSide, StormResult, Summary, Yardstick,
};
use crate::scenarios::{self, Ctx, ScenarioName};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: ScenarioName,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub creds: Creds,
    /// Load the data set first (idempotent; `prepare` does only this).
    #[arg(long)]
    pub prepare: bool,
    /// Concurrent requests of the prepare step.
    #[arg(long, default_value_t = 32)]
    pub prepare_concurrency: usize,
    /// Fail the run when the client p99 is above this (ms).
    #[arg(long, value_name = "MS")]
    pub max_p99_ms: Option<f64>,
    /// Fail the run when more than this percent of answers are errors.
    /// pos-mix fails on any error answer whatever this says.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Seconds of the /health yardstick (0: skip it, and no ratio).
    #[arg(long, default_value_t = 10)]
    pub yardstick_secs: u64,
    /// Redis of the server (redis://host:port): Redis commands per request.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Label of the store in the report (memory, redis, cluster...).
    #[arg(long, default_value = "unknown")]
    pub backend: String,
    /// Label of the durability mode (default: read from --redis, else n/a).
    #[arg(long)]
    pub fsync: Option<String>,
    /// restart-storm: distinct till logins (`<prefix>NNNNN`), one user each.
    #[arg(long, default_value_t = 2000)]
    pub tills: usize,
    #[arg(long, default_value = "till-")]
    pub till_prefix: String,
    /// A till's password is its login followed by this.
    #[arg(long, default_value = "-storm")]
    pub till_password_suffix: String,
    /// restart-storm: each till sends a request this often.
    #[arg(long, default_value_t = 1000)]
    pub till_interval_ms: u64,
    /// restart-storm: the p99 the fleet must get back under (ms).
    #[arg(long, default_value_t = 100.0)]
    pub slo_p99_ms: f64,
    #[command(flatten)]
    pub goose: GooseConfiguration,
}

/// Runs and reports; `Ok(true)` when every threshold held.
pub async fn run(mut args: RunArgs) -> anyhow::Result<bool> {
    let host = args
        .goose
        .host
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let host = host.trim_end_matches('/').to_owned();
    let api = Api::new(&host)?;
    let ds = Dataset::new(&args.dataset)?;
    api.wait_ready(30).await?;
    if args.prepare {
        let p = prepare::prepare(&api, &args.creds, &ds, args.prepare_concurrency).await?;
        println!("prepared: {}", serde_json::to_string(&p)?);
    }
    let scenario = args.scenario;
    let storm = scenario == ScenarioName::RestartStorm;
    let out = PathBuf::from(args.goose.output_dir.take().unwrap_or_else(|| {
        format!(
            "loadtest-runs/{}-{}",
            scenario.as_str(),
            timestamp().replace([' ', ':'], "")
        )
    }));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let users = args
        .goose
        .users
        .unwrap_or(if storm { args.tills } else { 32 });
    let run_time = args
        .goose
        .run_time
        .clone()
        .unwrap_or_else(|| if storm { "60s" } else { "30s" }.to_owned());

    // The yardstick: /health, same server, same client, same users.
    let health = if args.yardstick_secs > 0 {
        let ctx = Arc::new(Ctx::new(ds.clone(), String::new(), String::new(), ds.cards));
        let mut cfg = base_config(&host);
        cfg.users = Some(if storm { 32 } else { users });
        cfg.increase_rate = Some(cfg.users.unwrap_or(1).to_string());
        cfg.run_time = Some(format!("{}s", args.yardstick_secs));
        cfg.no_print_metrics = true;
        let m = attack(
            cfg,
            scenarios::build(ScenarioName::Health, &ctx, Duration::ZERO)?,
        )
        .await?;
        let (all, _) = merged(&m);
        let secs = steady_secs(&m);
        Yardstick {
            users: m.maximum_users,
            seconds: secs,
            rps: all.counter as f64 / secs,
            p99_ms: percentile_ms(&all, 0.99),
        }
    } else {
        Yardstick::default()
    };

    let first_new = if matches!(scenario, ScenarioName::PosMix | ScenarioName::Lifecycle) {
        prepare::first_new(&api, &args.creds, &ds).await?
    } else {
        ds.cards
    };
    let mut ctx = Ctx::new(
        ds.clone(),
        args.creds.pos.header(),
        args.creds.cc.header(),
        first_new,
    );
    if storm {
        ctx.tills = (1..=args.tills)
            .map(|i| {
                let login = format!("{}{i:05}", args.till_prefix);
                crate::client::Cred {
                    password: format!("{login}{}", args.till_password_suffix),
                    login,
                }
                .header()
            })
            .collect();
    }

    let metrics_before = scrape(&api).await;
    let redis_before = match &args.redis {
        Some(url) => Some(redis_info::stats(url).await?),
        None => None,
    };
    if storm {
        ctx.timeline = Some(Timeline::new());
    }
    let ctx = Arc::new(ctx);
    let mut cfg = args.goose.clone();
    cfg.host = Some(host.clone());
    cfg.output_dir = None;
    // goose's --test-plan shapes users and time itself.
    let test_plan = std::env::args().any(|a| a.starts_with("--test-plan"));
    if !test_plan {
        cfg.users = Some(users);
        cfg.run_time = Some(run_time);
        if cfg.increase_rate.is_none() && cfg.increase_time.is_none() {
            // All users at once (restart-storm: within a tenth of a second).
            cfg.increase_rate = Some((if storm { users * 10 } else { users }).to_string());
        }
    }
    cfg.no_telnet = true;
    cfg.report_file = vec![
        out.join("report.html").display().to_string(),
        out.join("report.json").display().to_string(),
    ];
    let goose_scenario =
        scenarios::build(scenario, &ctx, Duration::from_millis(args.till_interval_ms))?;
    let m = attack(cfg, goose_scenario).await?;
    let metrics_after = scrape(&api).await;
    let redis_after = match &args.redis {
        Some(url) => Some(redis_info::stats(url).await?),
        None => None,
    };

    // Client side.
    let (all, co) = merged(&m);
    let secs = steady_secs(&m);
    let error_answers = ctx.tally.error_count();
    let sent = ctx.tally.requests.load(Ordering::Relaxed).max(1);
    let client = ClientSide {
        requests: all.counter as u64,
        seconds: secs,
        rps: all.counter as f64 / secs,
        p50_ms: percentile_ms(&all, 0.50),
        p95_ms: percentile_ms(&all, 0.95),
        p99_ms: percentile_ms(&all, 0.99),
        max_ms: all.maximum_time_us as f64 / 1000.0,
        co_p99_ms: co.map(|co| percentile_ms(&co, 0.99)),
        error_answers,
        error_rate_pct: error_answers as f64 * 100.0 / sent as f64,
    };
    let mut requests: Vec<RequestRow> = m
        .requests
        .values()
        .map(|r| RequestRow {
            name: r.path.clone(),
            count: r.raw_data.counter as u64,
            share_pct: r.raw_data.counter as f64 * 100.0 / all.counter.max(1) as f64,
            rps: r.raw_data.counter as f64 / secs,
            p50_ms: percentile_ms(&r.raw_data, 0.50),
            p99_ms: percentile_ms(&r.raw_data, 0.99),
            failed: r.fail_count as u64,
        })
        .collect();
    requests.sort_by_key(|r| std::cmp::Reverse(r.count));
    let errors_by_key = ctx
        .tally
        .snapshot()
        .into_iter()
        .map(|((request, key), count)| ErrorRow {
            request,
            key,
            count,
        })
        .collect();

    let mut server = server_side(&metrics_before, &metrics_after);
    if let (Some(b), Some(a)) = (&redis_before, &redis_after) {
        let d = |k: &str| a.get(k).copied().unwrap_or(0.0) - b.get(k).copied().unwrap_or(0.0);
        let commands = d("total_commands_processed");
        if server.requests > 0.0 {
            server.redis_commands_per_request = Some(commands / server.requests);
        }
        let reads = d("total_reads_processed");
        if reads > 0.0 {
            server.redis_commands_per_read = Some(commands / reads);
        }
    } else if server.redis_commands_per_request.is_none() && args.backend != "memory" {
        server.notes.push(
            "Redis commands per request: n/a (give --redis URL of the server's Redis)".into(),
        );
    }
    let fsync = match (&args.fsync, &args.redis) {
        (Some(f), _) => f.clone(),
        (None, Some(url)) => redis_info::durability(url)
            .await
            .unwrap_or_else(|e| format!("n/a ({e})")),
        (None, None) => "n/a".to_owned(),
    };

    let storm_result = ctx.timeline.as_ref().map(|t| {
        storm_result(
            t,
            args.tills,
            args.slo_p99_ms,
            ctx.all_tills_in_ms.load(Ordering::Relaxed),
        )
    });

    // Thresholds.
    let mut checks = Vec::new();
    if let Some(max) = args.max_p99_ms {
        checks.push(Check {
            rule: format!("client p99 <= {max} ms"),
            observed: format!("{:.2} ms", client.p99_ms),
            passed: client.p99_ms <= max,
        });
    }
    checks.push(Check {
        rule: format!("error answers <= {}% of requests", args.max_error_rate),
        observed: format!(
            "{:.4}% ({} of {})",
            client.error_rate_pct, error_answers, sent
        ),
        passed: client.error_rate_pct <= args.max_error_rate,
    });
    if scenario == ScenarioName::PosMix {
        checks.push(Check {
            rule: "pos-mix: every answer a success".into(),
            observed: format!("{error_answers} error answers"),
            passed: error_answers == 0,
        });
    }
    if all.counter == 0 {
        checks.push(Check {
            rule: "the run made requests".into(),
            observed: "none".into(),
            passed: false,
        });
    }
    if let Some(st) = &storm_result {
        checks.push(Check {
            rule: format!(
                "restart-storm: p99 back under {} ms within the run",
                st.slo_p99_ms
            ),
            observed: st
                .recovered_after_secs
                .map_or("not recovered".into(), |v| format!("after {v:.0} s")),
            passed: st.recovered_after_secs.is_some(),
        });
    }
    if ctx.new_exhausted.load(Ordering::Relaxed) {
        server
            .notes
            .push("the New card pool was used up during the run: prepare more --cards".into());
    }
    let passed = checks.iter().all(|c| c.passed);

    let summary = Summary {
        scenario: scenario.as_str().to_owned(),
        host,
        started: timestamp(),
        notes: args.goose.notes.clone(),
        backend: args.backend.clone(),
        fsync,
        machine: machine(),
        users: m.maximum_users,
        command: command_line(),
        ratio_to_health: if health.rps > 0.0 {
            client.rps / health.rps
        } else {
            0.0
        },
        client,
        health,
        requests,
        errors_by_key,
        server,
        storm: storm_result,
        thresholds: checks,
        passed,
        files: [
            "summary.html",
            "summary.json",
            "summary.md",
            "report.html",
            "report.json",
        ]
        .iter()
        .map(|f| out.join(f).display().to_string())
        .collect(),
    };
    summary.write(&out)?;
    println!("{}", summary.markdown());
    Ok(passed)
}

fn base_config(host: &str) -> GooseConfiguration {
    let mut cfg = GooseConfiguration::default();
    cfg.host = Some(host.to_owned());
    cfg.no_telnet = true;
    cfg.quiet = 1;
    cfg
}

async fn attack(cfg: GooseConfiguration, scenario: Scenario) -> anyhow::Result<GooseMetrics> {
    let attack = GooseAttack::initialize_with_config(cfg)?.register_scenario(scenario);
    match attack.execute().await {
        Ok(m) => Ok(m),
        // goose's own --threshold rules: report them like ours.
        Err(GooseError::ThresholdsFailed { failed, metrics }) => {
            for f in &failed {
                eprintln!("goose threshold {} failed: observed {}", f.rule, f.observed);
            }
            Ok(*metrics.0)
        }
        Err(e) => Err(anyhow::anyhow!("goose: {e}")),
    }
}

/// Every request's timing data merged (and the coordinated-omission
/// corrected data, when goose kept any).
fn merged(
    m: &GooseMetrics,
) -> (
    GooseRequestMetricTimingData,
    Option<GooseRequestMetricTimingData>,
) {
    let mut all = GooseRequestMetricTimingData::default();
    let mut co: Option<GooseRequestMetricTimingData> = None;
    for r in m.requests.values() {
        add(&mut all, &r.raw_data);
        if let Some(c) = &r.coordinated_omission_data {
            add(co.get_or_insert_with(Default::default), c);
        }
    }
    (all, co)
}

fn add(into: &mut GooseRequestMetricTimingData, from: &GooseRequestMetricTimingData) {
    for (bucket, count) in from.times_us.iter() {
        let now = into.times_us.get(bucket).copied().unwrap_or(0);
        into.times_us.insert(*bucket, now + count);
    }
    if from.counter > 0 && (into.counter == 0 || from.minimum_time_us < into.minimum_time_us) {
        into.minimum_time_us = from.minimum_time_us;
    }
    into.maximum_time_us = into.maximum_time_us.max(from.maximum_time_us);
    into.total_time_us += from.total_time_us;
    into.counter += from.counter;
}

fn percentile_ms(t: &GooseRequestMetricTimingData, q: f32) -> f64 {
    if t.counter == 0 {
        return 0.0;
    }
    t.percentile_us(q) as f64 / 1000.0
}

/// Seconds the users held steady (goose's metrics cover that phase).
fn steady_secs(m: &GooseMetrics) -> f64 {
    let start = m
        .history
        .iter()
        .position(|h| matches!(h.action, TestPlanStepAction::Maintaining));
    if let Some(i) = start {
        if let Some(end) = m.history.get(i + 1) {
            let ms = end.timestamp.timestamp_millis() - m.history[i].timestamp.timestamp_millis();
            if ms > 0 {
                return ms as f64 / 1000.0;
            }
        }
    }
    (m.duration as f64).max(1.0)
}

async fn scrape(api: &Api) -> Option<Scrape> {
    match api.get_text("/metrics").await {
        Ok(text) => Some(Scrape::parse(&text)),
        Err(e) => {
            eprintln!("warning: cannot read /metrics: {e:#}");
            None
        }
    }
}

const OPS_ROUTES: [&str; 4] = ["/health", "/ready", "/metrics", "unmatched"];

fn server_side(before: &Option<Scrape>, after: &Option<Scrape>) -> ServerSide {
    let (Some(before), Some(after)) = (before, after) else {
        return ServerSide {
            notes: vec!["the server's /metrics could not be read: no server-side view".into()],
            ..ServerSide::default()
        };
    };
    let d = Scrape::delta(before, after);
    let api_route = |l: &BTreeMap<String, String>| {
        l.get("route")
            .is_none_or(|r| !OPS_ROUTES.contains(&r.as_str()))
    };
    let secs = |v: Option<f64>| v.map(|s| s * 1000.0);
    let requests = d.sum("loyalty_http_requests_total", api_route);
    let mut v = ServerSide {
        scraped: true,
        requests,
        p50_ms: secs(d.quantile("loyalty_http_request_duration_seconds", 0.50, api_route)),
        p95_ms: secs(d.quantile("loyalty_http_request_duration_seconds", 0.95, api_route)),
        p99_ms: secs(d.quantile("loyalty_http_request_duration_seconds", 0.99, api_route)),
        errors_by_key: d
            .sum_by("loyalty_errors_total", "key")
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .collect(),
        overloaded_rejections: d.sum("loyalty_shard_commands_rejected_total", |_| true),
        ..ServerSide::default()
    };
    let store = "loyalty_store_operation_duration_seconds";
    if d.has(&format!("{store}_count")) {
        if requests > 0.0 {
            v.store_ops_per_request = Some(d.sum(&format!("{store}_count"), |_| true) / requests);
        }
        v.store_p99_ms = secs(d.quantile(store, 0.99, |_| true));
        for (op, n) in d.sum_by(&format!("{store}_count"), "operation") {
            if n > 0.0 {
                if let Some(p) = d.quantile(store, 0.99, |l| l.get("operation") == Some(&op)) {
                    v.store_p99_ms_by_operation.insert(op, p * 1000.0);
                }
            }
        }
    } else {
        v.notes
            .push(format!("store operation p99: n/a (no {store} in /metrics)"));
    }
    let families = d.families();
    // Shard queue wait: whichever histogram the server names so.
    match families
        .iter()
        .find(|f| f.contains("shard") && f.contains("wait") && d.has(&format!("{f}_bucket")))
    {
        Some(f) => v.shard_queue_wait_p99_ms = secs(d.quantile(f, 0.99, |_| true)),
        None => v.notes.push(
            "shard queue wait: n/a (the server exports no shard queue wait histogram yet)".into(),
        ),
    }
    v.credential_cache_hit_ratio = hit_ratio(&d, "loyalty_auth_cache_lookups_total");
    match families
        .iter()
        .find(|f| f.contains("cache") && !f.contains("auth") && hit_ratio(&d, f).is_some())
    {
        Some(f) => v.card_cache_hit_ratio = hit_ratio(&d, f),
        None => v.notes.push(
            "card cache hit ratio: n/a (the server exports no card cache hit/miss counter yet)"
                .into(),
        ),
    }
    if let Some(f) = families
        .iter()
        .find(|f| f.contains("redis") && f.contains("command") && f.ends_with("_total"))
    {
        if requests > 0.0 {
            v.redis_commands_per_request = Some(d.sum(f, |_| true) / requests);
        }
    }
    v
}

/// hits ÷ (hits + misses) of a counter labelled `result`/`outcome` hit|miss.
fn hit_ratio(d: &Scrape, family: &str) -> Option<f64> {
    for label in ["result", "outcome", "status"] {
        let by = d.sum_by(family, label);
        let hit = by.get("hit").copied().unwrap_or(0.0);
        let miss = by.get("miss").copied().unwrap_or(0.0);
        if hit + miss > 0.0 {
            return Some(hit / (hit + miss));
        }
    }
    None
}

/// Per-second p99 by completion time; recovered at the first second from
/// which every following full second stays under the SLO (at least 3 of
/// them).
fn storm_result(t: &Timeline, tills: usize, slo_ms: f64, all_in_ms: u64) -> StormResult {
    let points = t.points.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last = points.iter().map(|p| p.0 / 1000).max().unwrap_or(0);
    let mut per: Vec<Vec<u32>> = vec![Vec::new(); last as usize + 1];
    for (at, lat) in &points {
        per[(at / 1000) as usize].push(*lat);
    }
    // The last second is cut short by the end of the run.
    let full = per.len().saturating_sub(1);
    let per_second: Vec<(u32, usize, f64)> = per[..full]
        .iter_mut()
        .enumerate()
        .map(|(s, lats)| {
            lats.sort_unstable();
            let p99 = if lats.is_empty() {
                0.0
            } else {
                lats[((lats.len() as f64 * 0.99).ceil() as usize).clamp(1, lats.len()) - 1] as f64
                    / 1000.0
            };
            (s as u32, lats.len(), p99)
        })
        .collect();
    let mut recovered = None;
    for s in (0..per_second.len()).rev() {
        let (_, n, p) = per_second[s];
        if n == 0 || p > slo_ms {
            break;
        }
        recovered = Some(s);
    }
    let recovered = recovered.filter(|s| per_second.len() - s >= 3);
    StormResult {
        tills,
        slo_p99_ms: slo_ms,
        recovered_after_secs: recovered.map(|s| s as f64),
        all_tills_in_secs: (all_in_ms > 0).then(|| all_in_ms as f64 / 1000.0),
        peak_p99_ms: per_second.iter().map(|p| p.2).fold(0.0, f64::max),
        per_second,
    }
}

fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = prepare::date_string((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!("{day} {:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// "N cores, CPU model".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    format!("{cores} cores, {model}")
}

fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
