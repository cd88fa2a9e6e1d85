//! One run: the `/health` yardstick, then the scenario in the open model
//! (arrivals at a rate, `open.rs`) or goose's closed model, measured over
//! the same window on both sides (warm-up excluded from the client's
//! figures and from the server's `/metrics`, Redis INFO and CPU alike);
//! then the report and every gate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use goose::config::GooseConfiguration;
use goose::metrics::{GooseCoordinatedOmissionMitigation, GooseRequestMetricTimingData};
use goose::prelude::*;
use goose::test_plan::TestPlanStepAction;

use crate::calls::Timeline;
use crate::client::{Api, Creds};
use crate::cpu;
use crate::dataset::{Dataset, DatasetArgs};
use crate::gates::{self, Limit};
use crate::manifest;
use crate::open::{Open, Step};
use crate::prepare;
use crate::promtext::Scrape;
use crate::record::{quantile_ms, spectrum, Snapshot, Stats};
use crate::redis_info;
use crate::report::{
    Check, ClientSide, Cpu, ErrorRow, RequestRow, SecondRow, ServerSide, Settings, StepRow,
    StormResult, Summary, Yardstick,
};
use crate::scenarios::{self, Ctx, ScenarioName};
use crate::series::{Sampler, ServerSecond};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// Arrivals at --rate per second whatever the server does; latency from
    /// each request's due time.
    Open,
    /// goose: --users in a loop, each sending when its last answer came;
    /// latency from the send (coordinated omission not corrected).
    Closed,
}

/// What the open model and the server's view need, shared by `run` and
/// `capacity`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Arrivals per second whatever the server does (the open model). The
    /// requests a transaction sends after the first (they need its answer)
    /// come on top.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of load before each measured window: excluded from the
    /// client's figures and the server's alike.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// Open model: transactions in flight at most; past it the schedule
    /// waits (those sends are late, and their latency still counts from the
    /// due time).
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Open model: a request unanswered after this is an error (ClientTimeout).
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// The server's process, for its CPU (default: the process listening on
    /// the host's port, when the host is this machine's loopback).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Redis of the server (redis://host:port): Redis commands per request.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Label of the store in the report (memory, redis, cluster...).
    #[arg(long, default_value = "unknown")]
    pub backend: String,
    /// Label of the durability mode (default: read from --redis, else n/a).
    #[arg(long)]
    pub fsync: Option<String>,
    /// Where `prepare` leaves its data set flags, one file per server.
    #[arg(long, default_value = "loadtest-runs/datasets")]
    pub manifest_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: ScenarioName,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub creds: Creds,
    /// open (default): an arrival rate; closed: goose's users in a loop.
    #[arg(long, value_enum, default_value = "open")]
    pub model: Model,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Open model: more rates, each a step of --run-time after its own
    /// warm-up (e.g. --steps 400,800).
    #[arg(long, value_delimiter = ',', value_name = "RATE,...")]
    pub steps: Vec<f64>,
    /// Load the data set first (idempotent; `prepare` does only this).
    #[arg(long)]
    pub prepare: bool,
    /// Concurrent requests of the prepare step.
    #[arg(long, default_value_t = 32)]
    pub prepare_concurrency: usize,
    /// Fail the run when the client p99 (from the due time in the open
    /// model) is above this (ms).
    #[arg(long, value_name = "MS")]
    pub max_p99_ms: Option<f64>,
    /// Fail the run when more than this percent of answers are errors.
    /// pos-mix fails on any error answer whatever this says.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Open model: fail the run when the client achieved less than this
    /// share of the target arrival rate (a late client measures itself, not
    /// the server). 0 turns the gate off — for functional runs on a loaded
    /// machine, where only the answers count.
    #[arg(long, value_name = "RATIO", default_value_t = 0.95)]
    pub min_schedule_ratio: f64,
    /// More rules, judged on the measured window: `p99<10ms`,
    /// `p99.9<=25ms for confirm`, `max<1s`, `error-rate<0.1%`, `late<1%`,
    /// `rps>=500` (repeatable).
    #[arg(long = "limit", value_name = "RULE")]
    pub limits: Vec<Limit>,
    /// Seconds of the /health yardstick (0: skip it, and no ratio).
    #[arg(long, default_value_t = 10)]
    pub yardstick_secs: u64,
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

/// The open model's steps of a run: --rate, then --steps.
fn rates(args: &RunArgs) -> Vec<f64> {
    std::iter::once(args.load.rate)
        .chain(args.steps.iter().copied())
        .collect()
}

fn run_secs(args: &RunArgs, storm: bool) -> anyhow::Result<f64> {
    let text = args
        .goose
        .run_time
        .clone()
        .unwrap_or_else(|| if storm { "60s" } else { "30s" }.to_owned());
    let secs = goose::util::parse_timespan(&text)
        .with_context(|| format!("--run-time {text:?}: not a time span (30s, 2m, 1h)"))?;
    anyhow::ensure!(secs > 0, "--run-time {text:?}: must be at least a second");
    Ok(secs as f64)
}

/// Refuses what cannot be measured or can never pass, before anything runs.
fn validate(args: &RunArgs) -> anyhow::Result<()> {
    if let Some(max) = args.max_p99_ms {
        gates::latency_limit("--max-p99-ms", max)?;
    }
    gates::percent("--max-error-rate", args.max_error_rate)?;
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.min_schedule_ratio),
        "--min-schedule-ratio {}: a share between 0 and 1",
        args.min_schedule_ratio
    );
    validate_load(&args.load)?;
    if args
        .goose
        .co_mitigation
        .as_ref()
        .is_some_and(|m| !matches!(m, GooseCoordinatedOmissionMitigation::Disabled))
    {
        bail!(
            "--co-mitigation is not used: goose's backfill works per pass of a user through \
             all its weighted transactions (~200 requests in pos-mix), so its synthetic samples \
             are pass-length, not a wrk2-style correction. The open model (--model open, the \
             default) times every request from when it was due."
        );
    }
    let storm = args.scenario == ScenarioName::RestartStorm;
    match args.model {
        Model::Open => {
            if storm {
                bail!("restart-storm runs in the closed model (--model closed): each till waits its interval");
            }
            for r in rates(args) {
                gates::rate("--rate/--steps", r)?;
            }
            let goose_only = [
                ("--users", args.goose.users.is_some()),
                (
                    "--throttle-requests",
                    args.goose.throttle_requests.is_some(),
                ),
                ("--increase-rate", args.goose.increase_rate.is_some()),
                ("--increase-time", args.goose.increase_time.is_some()),
                ("--iterations", args.goose.iterations.is_some()),
                ("--threshold", !args.goose.threshold.is_empty()),
                ("--report-file", !args.goose.report_file.is_empty()),
                (
                    "--test-plan",
                    std::env::args().any(|a| a.starts_with("--test-plan")),
                ),
            ];
            for (flag, given) in goose_only {
                if given {
                    bail!(
                        "{flag} is goose's (the closed model): add --model closed, or use the open \
                         model's own (--rate, --steps, --limit)"
                    );
                }
            }
        }
        Model::Closed => {
            if !args.steps.is_empty() {
                bail!("--steps is the open model's (goose's closed model has --test-plan)");
            }
        }
    }
    Ok(())
}

pub fn validate_load(load: &LoadArgs) -> anyhow::Result<()> {
    gates::rate("--rate", load.rate)?;
    anyhow::ensure!(
        load.warmup_secs.is_finite() && (0.0..=3600.0).contains(&load.warmup_secs),
        "--warmup-secs {}: from 0 to 3600",
        load.warmup_secs
    );
    anyhow::ensure!(
        (1..=100_000).contains(&load.max_in_flight),
        "--max-in-flight {}: from 1 to 100000",
        load.max_in_flight
    );
    anyhow::ensure!(load.timeout_secs > 0, "--timeout-secs: at least 1");
    Ok(())
}

/// The manifest check and the probe of the server's data set.
pub async fn check_dataset(
    api: &Api,
    creds: &Creds,
    ds: &Dataset,
    load: &LoadArgs,
    host: &str,
) -> anyhow::Result<()> {
    manifest::check(&manifest::path(&load.manifest_dir, host), &ds.args)?;
    manifest::probe(api, creds, ds).await
}

pub async fn prepare_and_record(
    api: &Api,
    creds: &Creds,
    ds: &Dataset,
    concurrency: usize,
    manifest_dir: &std::path::Path,
    host: &str,
) -> anyhow::Result<prepare::Prepared> {
    let p = prepare::prepare(api, creds, ds, concurrency).await?;
    manifest::write(&manifest::path(manifest_dir, host), &ds.args)?;
    Ok(p)
}

/// The server's state at one end of a measured window.
pub struct Mark {
    pub at: Instant,
    pub scrape: Option<Scrape>,
    pub cpu: cpu::Mark,
    pub redis: Option<BTreeMap<String, f64>>,
}

pub async fn mark(api: &Api, redis: Option<&str>, server_pid: Option<u32>) -> Mark {
    let scrape = scrape(api).await;
    let redis = match redis {
        Some(url) => match redis_info::stats(url).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("warning: Redis INFO: {e:#}");
                None
            }
        },
        None => None,
    };
    Mark {
        at: Instant::now(),
        scrape,
        cpu: cpu::Mark::now(server_pid),
        redis,
    }
}

/// What happened on the server between marks, summed over windows.
#[derive(Default, Clone)]
pub struct Delta {
    pub metrics: Option<Scrape>,
    pub client_cpu: Option<f64>,
    pub server_cpu: Option<f64>,
    pub redis_commands: Option<f64>,
    pub redis_reads: Option<f64>,
}

impl Delta {
    pub fn between(before: &Mark, after: &Mark) -> Delta {
        let (client_cpu, server_cpu) = after.cpu.since(&before.cpu);
        let metrics = match (&before.scrape, &after.scrape) {
            (Some(b), Some(a)) => Some(Scrape::delta(b, a)),
            _ => None,
        };
        let (mut redis_commands, mut redis_reads) = (None, None);
        if let (Some(b), Some(a)) = (&before.redis, &after.redis) {
            let d = |k: &str| a.get(k).copied().unwrap_or(0.0) - b.get(k).copied().unwrap_or(0.0);
            redis_commands = Some(d("total_commands_processed"));
            redis_reads = Some(d("total_reads_processed"));
        }
        Delta {
            metrics,
            client_cpu,
            server_cpu,
            redis_commands,
            redis_reads,
        }
    }

    pub fn add(&mut self, other: &Delta) {
        fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, None) => a,
                (None, b) => b,
            }
        }
        match (&mut self.metrics, &other.metrics) {
            (Some(m), Some(o)) => m.add(o),
            (None, Some(o)) => self.metrics = Some(o.clone()),
            _ => {}
        }
        self.client_cpu = sum(self.client_cpu, other.client_cpu);
        self.server_cpu = sum(self.server_cpu, other.server_cpu);
        self.redis_commands = sum(self.redis_commands, other.redis_commands);
        self.redis_reads = sum(self.redis_reads, other.redis_reads);
    }
}

/// One step's row, from the recorder's current window and the server's
/// delta over it.
pub fn step_row(
    target: f64,
    stats: &Stats,
    arrivals_sent: u64,
    secs: f64,
    waited_for_slot: u64,
    delta: &Delta,
) -> StepRow {
    let n = stats.count();
    let server = delta.metrics.as_ref().map(server_side);
    let answered = server.as_ref().map_or(0.0, |s| s.requests);
    StepRow {
        target_rps: target,
        achieved_rps: arrivals_sent as f64 / secs,
        rps: n as f64 / secs,
        requests: n,
        p50_ms: stats.ms(0.50),
        p99_ms: stats.ms(0.99),
        p999_ms: stats.ms(0.999),
        max_ms: stats.ms(1.0),
        error_answers: stats.errors,
        error_rate_pct: stats.errors as f64 * 100.0 / n.max(1) as f64,
        late_pct: stats.late as f64 * 100.0 / n.max(1) as f64,
        waited_for_slot,
        server_p99_ms: server.and_then(|s| s.p99_ms),
        client_cpu_pct: delta.client_cpu.map(|c| c * 100.0 / secs),
        server_cpu_pct: delta.server_cpu.map(|c| c * 100.0 / secs),
        server_us_per_request: delta
            .server_cpu
            .filter(|_| answered > 0.0)
            .map(|c| c * 1e6 / answered),
        passed: None,
        why: String::new(),
    }
}

/// A step of the open model's schedule, as the series needs it.
#[derive(Debug, Clone, Copy)]
pub struct Scheduled {
    pub rate: f64,
    pub start: Instant,
    pub window: (Instant, Instant),
}

/// Client and server, second by second, over the whole run.
pub fn second_rows(
    t0: Instant,
    snap: &Snapshot,
    server: &[ServerSecond],
    schedule: &[Scheduled],
    closed_window: Option<(Instant, Instant)>,
) -> Vec<SecondRow> {
    let secs_of = |at: Instant| at.saturating_duration_since(t0).as_secs_f64();
    let server_at = |t: usize| {
        server
            .iter()
            .find(|s| (s.t - 0.5).max(0.0).floor() as usize == t)
    };
    let last_server = server
        .iter()
        .map(|s| (s.t - 0.5).max(0.0).floor() as usize + 1)
        .max()
        .unwrap_or(0);
    // Up to the last full second of the last window: what follows is the
    // drain of the answers still in flight, not load.
    let end = schedule
        .iter()
        .map(|s| s.window.1)
        .chain(closed_window.map(|w| w.1))
        .max()
        .map_or(usize::MAX, |e| secs_of(e).floor() as usize);
    let n = snap.seconds.len().max(last_server).min(end);
    (0..n)
        .map(|t| {
            let c = snap.seconds.get(t);
            let mid = t as f64 + 0.5;
            let target = schedule
                .iter()
                .find(|s| mid >= secs_of(s.start) && mid < secs_of(s.window.1))
                .map(|s| s.rate);
            let measured = schedule
                .iter()
                .map(|s| s.window)
                .chain(closed_window)
                .any(|(a, b)| mid >= secs_of(a) && mid < secs_of(b));
            let sv = server_at(t);
            let q = |q: f64| {
                c.filter(|c| !c.latency.is_empty())
                    .map(|c| quantile_ms(&c.latency, q))
            };
            SecondRow {
                t: t as u32,
                measured,
                target_rps: target,
                achieved_rps: c.map_or(0.0, |c| c.arrivals_sent as f64),
                requests: c.map_or(0, |c| c.due),
                p50_ms: q(0.50),
                p99_ms: q(0.99),
                errors: c.map_or(0, |c| c.errors),
                server_rps: sv.map(|s| s.rps),
                server_p50_ms: sv.and_then(|s| s.p50_ms),
                server_p99_ms: sv.and_then(|s| s.p99_ms),
                server_errors: sv.map(|s| s.errors),
                client_cpu_pct: sv.and_then(|s| s.client_cpu_pct),
                server_cpu_pct: sv.and_then(|s| s.server_cpu_pct),
            }
        })
        .collect()
}

/// Runs and reports; `Ok(true)` when every gate held.
pub async fn run(mut args: RunArgs) -> anyhow::Result<bool> {
    validate(&args)?;
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
        let p = prepare_and_record(
            &api,
            &args.creds,
            &ds,
            args.prepare_concurrency,
            &args.load.manifest_dir,
            &host,
        )
        .await?;
        println!("prepared: {}", serde_json::to_string(&p)?);
    }
    let scenario = args.scenario;
    let storm = scenario == ScenarioName::RestartStorm;
    if scenario != ScenarioName::Health {
        check_dataset(&api, &args.creds, &ds, &args.load, &host).await?;
    }
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
    let run_secs = run_secs(&args, storm)?;
    let warmup = if storm { 0.0 } else { args.load.warmup_secs };

    // The yardstick: /health, same server, same client, goose's closed loop.
    let health = if args.yardstick_secs > 0 {
        yardstick(
            &host,
            &ds,
            if storm { 32 } else { users.min(64) },
            args.yardstick_secs,
        )
        .await?
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
        ctx.timeline = Some(Timeline::new());
    }
    let ctx = Arc::new(ctx);
    let server_pid = cpu::server_pid(args.load.server_pid, &host);
    let redis_url = args.load.redis.clone();
    let sampler = Sampler::start(api.clone(), server_pid, ctx.rec.start);

    let mut total = Delta::default();
    let mut steps = Vec::new();
    let mut schedule = Vec::new();
    let mut closed_window = None;
    let mut measured_secs = 0.0;
    let mut goose_checks = Vec::new();
    let mut goose_users = 0;
    match args.model {
        Model::Open => {
            let open = Open::new(
                ctx.clone(),
                scenario,
                &host,
                args.load.max_in_flight,
                Duration::from_secs(args.load.timeout_secs),
            )?;
            for rate in rates(&args) {
                let step = Step {
                    rate,
                    warmup: Duration::from_secs_f64(warmup),
                    measure: Duration::from_secs_f64(run_secs),
                };
                let start = Instant::now() + Duration::from_millis(50);
                let (ran, before) = tokio::join!(open.run_step(step, start), async {
                    tokio::time::sleep_until((start + step.warmup).into()).await;
                    mark(&api, redis_url.as_deref(), server_pid).await
                });
                let after = mark(&api, redis_url.as_deref(), server_pid).await;
                let delta = Delta::between(&before, &after);
                let snap = ctx.rec.snapshot();
                steps.push(step_row(
                    rate,
                    &snap.step,
                    snap.step_arrivals_sent,
                    run_secs,
                    ran.waited_for_slot,
                    &delta,
                ));
                total.add(&delta);
                measured_secs += run_secs;
                schedule.push(Scheduled {
                    rate,
                    start: ran.start,
                    window: ran.window,
                });
                if ctx.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        Model::Closed => {
            let mut cfg = args.goose.clone();
            cfg.host = Some(host.clone());
            cfg.output_dir = None;
            // The notes are this tool's (summary.json keeps them); goose
            // refuses --notes when it writes no report of its own.
            if cfg.report_file.is_empty() {
                cfg.notes = None;
            }
            // goose's --test-plan shapes users and time itself.
            let test_plan = std::env::args().any(|a| a.starts_with("--test-plan"));
            if !test_plan {
                cfg.users = Some(users);
                // goose's run time starts once every user runs; the warm-up
                // is the first part of it.
                cfg.run_time = Some(format!("{}s", (run_secs + warmup).ceil() as u64));
                if cfg.increase_rate.is_none() && cfg.increase_time.is_none() {
                    // All users at once (restart-storm: within a tenth of a second).
                    cfg.increase_rate = Some((if storm { users * 10 } else { users }).to_string());
                }
            }
            cfg.no_telnet = true;
            let window_start = Instant::now() + Duration::from_secs_f64(warmup);
            ctx.rec.set_window(
                window_start,
                window_start + Duration::from_secs(86_400 * 365),
            );
            let goose_scenario =
                scenarios::build(scenario, &ctx, Duration::from_millis(args.till_interval_ms))?;
            let (outcome, before) = tokio::join!(attack(cfg, goose_scenario), async {
                tokio::time::sleep_until(window_start.into()).await;
                mark(&api, redis_url.as_deref(), server_pid).await
            });
            let after = mark(&api, redis_url.as_deref(), server_pid).await;
            let (m, checks) = outcome?;
            goose_checks = checks;
            goose_users = m.maximum_users;
            ctx.rec.set_window(window_start, after.at);
            closed_window = Some((window_start, after.at));
            measured_secs = (after.at - window_start).as_secs_f64().max(1e-3);
            let delta = Delta::between(&before, &after);
            let snap = ctx.rec.snapshot();
            let mut row = step_row(0.0, &snap.all, 0, measured_secs, 0, &delta);
            row.achieved_rps = 0.0;
            steps.push(row);
            total = delta;
        }
    }
    let server_series = sampler.finish().await;
    let snap = ctx.rec.snapshot();

    // Client side.
    let all = &snap.all;
    let n = all.count();
    let open = args.model == Model::Open;
    let scheduled: f64 = schedule.iter().map(|s| s.rate * run_secs).sum();
    let client = ClientSide {
        requests: n,
        seconds: measured_secs,
        latency_from: if open { "due time" } else { "send" }.into(),
        target_rps: open.then(|| scheduled / measured_secs.max(1e-9)),
        achieved_rps: open.then(|| snap.arrivals_sent as f64 / measured_secs.max(1e-9)),
        rps: n as f64 / measured_secs.max(1e-9),
        p50_ms: all.ms(0.50),
        p90_ms: all.ms(0.90),
        p95_ms: all.ms(0.95),
        p99_ms: all.ms(0.99),
        p999_ms: all.ms(0.999),
        max_ms: all.ms(1.0),
        service_p50_ms: quantile_ms(&all.service, 0.50),
        service_p99_ms: quantile_ms(&all.service, 0.99),
        late_sends: all.late,
        late_pct: all.late as f64 * 100.0 / n.max(1) as f64,
        send_lag_p99_ms: quantile_ms(&all.lag, 0.99),
        send_lag_max_ms: quantile_ms(&all.lag, 1.0),
        waited_for_slot: steps.iter().map(|s| s.waited_for_slot).sum(),
        error_answers: all.errors,
        error_rate_pct: all.errors as f64 * 100.0 / n.max(1) as f64,
        whole_run_requests: snap.whole_run_requests,
        whole_run_errors: snap.whole_run_errors,
    };
    let mut requests: Vec<RequestRow> = snap
        .by_request
        .iter()
        .map(|(name, r)| RequestRow {
            name: name.clone(),
            count: r.count(),
            share_pct: r.count() as f64 * 100.0 / n.max(1) as f64,
            rps: r.count() as f64 / measured_secs.max(1e-9),
            p50_ms: r.ms(0.50),
            p99_ms: r.ms(0.99),
            p999_ms: r.ms(0.999),
            max_ms: r.ms(1.0),
            failed: r.errors,
        })
        .collect();
    requests.sort_by_key(|r| std::cmp::Reverse(r.count));
    let errors_by_key = snap
        .errors_by_key
        .iter()
        .map(|((request, key), count)| ErrorRow {
            request: request.clone(),
            key: key.clone(),
            count: *count,
        })
        .collect();

    let mut server = match &total.metrics {
        Some(d) => server_side(d),
        None => ServerSide {
            notes: vec!["the server's /metrics could not be read: no server-side view".into()],
            ..ServerSide::default()
        },
    };
    if let (Some(commands), Some(reads)) = (total.redis_commands, total.redis_reads) {
        if server.requests > 0.0 {
            server.redis_commands_per_request = Some(commands / server.requests);
        }
        if reads > 0.0 {
            server.redis_commands_per_read = Some(commands / reads);
        }
    } else if server.redis_commands_per_request.is_none() && args.load.backend != "memory" {
        server.notes.push(
            "Redis commands per request: n/a (give --redis URL of the server's Redis)".into(),
        );
    }
    let fsync = match (&args.load.fsync, &args.load.redis) {
        (Some(f), _) => f.clone(),
        (None, Some(url)) => redis_info::durability(url)
            .await
            .unwrap_or_else(|e| format!("n/a ({e})")),
        (None, None) => "n/a".to_owned(),
    };
    let cpu = Cpu {
        client_secs: total.client_cpu,
        server_secs: total.server_cpu,
        client_pct: total.client_cpu.map(|c| c * 100.0 / measured_secs),
        server_pct: total.server_cpu.map(|c| c * 100.0 / measured_secs),
        server_us_per_request: total
            .server_cpu
            .filter(|_| server.requests > 0.0)
            .map(|c| c * 1e6 / server.requests),
        server_pid,
    };
    if server_pid.is_none() {
        server
            .notes
            .push("server CPU: n/a (the server's pid was not found: give --server-pid)".into());
    }

    let storm_result = ctx.timeline.as_ref().map(|t| {
        storm_result(
            t,
            args.tills,
            args.slo_p99_ms,
            ctx.all_tills_in_ms.load(Ordering::Relaxed),
        )
    });

    // Gates.
    let mut checks = Vec::new();
    if let Some(max) = args.max_p99_ms {
        checks.push(Check {
            rule: format!("client p99 (from {}) <= {max} ms", client.latency_from),
            observed: format!("{:.2} ms", client.p99_ms),
            passed: n > 0 && client.p99_ms <= max,
        });
    }
    checks.push(Check {
        rule: format!("error answers <= {}% of requests", args.max_error_rate),
        observed: format!(
            "{:.4}% ({} of {})",
            client.error_rate_pct, client.error_answers, n
        ),
        passed: client.error_rate_pct <= args.max_error_rate,
    });
    for l in &args.limits {
        checks.push(l.judge(&snap, measured_secs));
    }
    if open && args.min_schedule_ratio > 0.0 {
        for s in &steps {
            checks.push(Check {
                rule: format!(
                    "the client kept the schedule: achieved >= {}% of {:.0} arrivals/s",
                    args.min_schedule_ratio * 100.0,
                    s.target_rps
                ),
                observed: format!("{:.1}/s", s.achieved_rps),
                passed: s.achieved_rps >= args.min_schedule_ratio * s.target_rps,
            });
        }
    }
    checks.extend(goose_checks);
    // A till's own mixes: every request is valid, so any error is a finding.
    if matches!(scenario, ScenarioName::PosMix | ScenarioName::HoldConfirm) {
        checks.push(Check {
            rule: format!(
                "{}: every answer a success (whole run, warm-up included)",
                scenario.as_str()
            ),
            observed: format!("{} error answers", snap.whole_run_errors),
            passed: snap.whole_run_errors == 0,
        });
    }
    if n == 0 {
        checks.push(Check {
            rule: "the run made requests in its measured window".into(),
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

    let series = second_rows(
        ctx.rec.start,
        &snap,
        &server_series,
        &schedule,
        closed_window,
    );
    let settings = Settings {
        scenario: scenario.as_str().to_owned(),
        model: if open { "open" } else { "closed" }.into(),
        rates: if open { rates(&args) } else { Vec::new() },
        users: if open { 0 } else { users },
        run_secs,
        warmup_secs: warmup,
        max_in_flight: if open { args.load.max_in_flight } else { 0 },
        dataset: dataset_flags(&ds.args),
        backend: args.load.backend.clone(),
        fsync: fsync.clone(),
        yardstick_secs: args.yardstick_secs,
    };
    let summary = Summary {
        scenario: scenario.as_str().to_owned(),
        host,
        started: timestamp(),
        notes: args.goose.notes.clone(),
        backend: args.load.backend.clone(),
        fsync,
        machine: machine(),
        users: if open { 0 } else { goose_users },
        command: command_line(),
        settings,
        ratio_to_health: (health.rps > 0.0).then(|| client.rps / health.rps),
        distribution: spectrum(&all.latency),
        client,
        health,
        cpu,
        steps,
        requests,
        errors_by_key,
        server,
        series,
        storm: storm_result,
        thresholds: checks,
        passed,
        files: ["summary.html", "summary.json", "summary.md"]
            .iter()
            .map(|f| out.join(f).display().to_string())
            .collect(),
    };
    summary.write(&out)?;
    println!("{}", summary.markdown());
    Ok(passed)
}

/// The data set flags as one would type them.
pub fn dataset_flags(a: &DatasetArgs) -> String {
    let mut s = format!(
        "--cards {} --active {} --bonuses-per-card {} --bonus-amount {} --hot-cards {} --card-base {} --mobile-base {}",
        a.cards, a.active, a.bonuses_per_card, a.bonus_amount, a.hot_cards, a.card_base, a.mobile_base
    );
    if let Some(c) = a.contacts {
        s.push_str(&format!(" --contacts {c}"));
    }
    if let Some(c) = a.cc_cards {
        s.push_str(&format!(" --cc-cards {c}"));
    }
    s
}

async fn yardstick(host: &str, ds: &Dataset, users: usize, secs: u64) -> anyhow::Result<Yardstick> {
    let ctx = Arc::new(Ctx::new(ds.clone(), String::new(), String::new(), ds.cards));
    let mut cfg = base_config(host);
    cfg.users = Some(users);
    cfg.increase_rate = Some(users.to_string());
    cfg.run_time = Some(format!("{secs}s"));
    cfg.no_print_metrics = true;
    let (m, _) = attack(
        cfg,
        scenarios::build(ScenarioName::Health, &ctx, Duration::ZERO)?,
    )
    .await?;
    let (all, _) = merged(&m);
    let secs = steady_secs(&m);
    Ok(Yardstick {
        users: m.maximum_users,
        seconds: secs,
        rps: all.counter as f64 / secs,
        p99_ms: percentile_ms(&all, 0.99),
    })
}

fn base_config(host: &str) -> GooseConfiguration {
    let mut cfg = GooseConfiguration::default();
    cfg.host = Some(host.to_owned());
    cfg.no_telnet = true;
    cfg.quiet = 1;
    cfg
}

/// Runs goose; its `--threshold` rules come back as gates (a failed one
/// fails the run: goose reports it as an error, which carries the metrics).
async fn attack(
    cfg: GooseConfiguration,
    scenario: Scenario,
) -> anyhow::Result<(GooseMetrics, Vec<Check>)> {
    let attack = GooseAttack::initialize_with_config(cfg)?.register_scenario(scenario);
    let m = match attack.execute().await {
        Ok(m) => m,
        Err(GooseError::ThresholdsFailed { metrics, .. }) => *metrics.0,
        Err(e) => return Err(anyhow::anyhow!("goose: {e}")),
    };
    let checks = m
        .thresholds
        .iter()
        .map(|t| Check {
            rule: format!("goose --threshold {}", t.rule),
            observed: if t.aborted {
                format!("{} (stopped the run)", t.observed)
            } else {
                t.observed.clone()
            },
            passed: t.passed,
        })
        .collect();
    Ok((m, checks))
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

/// The API's routes (not /health, /ready, /metrics or unmatched paths).
pub fn api_route(l: &BTreeMap<String, String>) -> bool {
    l.get("route")
        .is_none_or(|r| !OPS_ROUTES.contains(&r.as_str()))
}

/// The server's view from a delta of its `/metrics`.
pub fn server_side(d: &Scrape) -> ServerSide {
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
    v.credential_cache_hit_ratio = hit_ratio(d, "loyalty_auth_cache_lookups_total");
    match families
        .iter()
        .find(|f| f.contains("cache") && !f.contains("auth") && hit_ratio(d, f).is_some())
    {
        Some(f) => v.card_cache_hit_ratio = hit_ratio(d, f),
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

pub fn timestamp() -> String {
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

pub fn command_line() -> String {
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
