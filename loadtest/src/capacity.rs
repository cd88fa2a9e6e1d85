//! The capacity search: the open model at a rising arrival rate, step by
//! step, until the p99 (from each request's due time) or the error rate
//! breaks its SLO, then halving the gap between the last step that held
//! and the first that broke. The answer is the highest rate that held: the
//! number a capacity plan needs, with client and server CPU at every step.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::client::{Api, Creds};
use crate::cpu;
use crate::dataset::{Dataset, DatasetArgs};
use crate::gates;
use crate::open::{Open, Step};
use crate::prepare;
use crate::report::{steps_table, SecondRow, StepRow};
use crate::runner::{self, Delta, LoadArgs, Scheduled};
use crate::scenarios::{Ctx, ScenarioName};
use crate::series::Sampler;

#[derive(clap::Args, Debug)]
pub struct CapacityArgs {
    /// The scenario whose capacity is searched.
    #[arg(value_enum)]
    pub scenario: ScenarioName,
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub host: String,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub creds: Creds,
    /// (--rate is the first step's rate.)
    #[command(flatten)]
    pub load: LoadArgs,
    /// The SLO: p99 from the due time, ms.
    #[arg(long, value_name = "MS", default_value_t = 10.0)]
    pub max_p99_ms: f64,
    /// The SLO: error answers, percent of requests.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Measured seconds per step (after --warmup-secs).
    #[arg(long, default_value_t = 10.0)]
    pub step_secs: f64,
    /// Each step's rate is the last one's times this, until one breaks.
    #[arg(long, default_value_t = 1.5)]
    pub growth: f64,
    /// Then this many steps halve the gap between held and broke.
    #[arg(long, default_value_t = 3)]
    pub refine: usize,
    /// Never above this rate.
    #[arg(long, default_value_t = 100_000.0)]
    pub max_rate: f64,
    /// At most this many steps in all.
    #[arg(long, default_value_t = 16)]
    pub max_steps: usize,
    /// Fail (exit 1) when the highest rate that held is below this.
    #[arg(long, value_name = "RATE")]
    pub min_rate: Option<f64>,
    /// Load the data set first (idempotent).
    #[arg(long)]
    pub prepare: bool,
    /// Where the report goes (default loadtest-runs/capacity-<scenario>-<time>).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    #[arg(long)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CapacityReport {
    pub scenario: String,
    pub host: String,
    pub started: String,
    pub backend: String,
    pub fsync: String,
    pub machine: String,
    pub command: String,
    pub notes: Option<String>,
    pub max_p99_ms: f64,
    pub max_error_rate: f64,
    pub step_secs: f64,
    pub warmup_secs: f64,
    pub dataset: String,
    /// In the order they ran.
    pub steps: Vec<StepRow>,
    /// The highest step that held.
    pub highest: Option<StepRow>,
    pub min_rate: Option<f64>,
    pub passed: bool,
    pub series: Vec<SecondRow>,
}

impl CapacityReport {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# {} capacity — {}\n",
            self.scenario,
            match &self.highest {
                Some(h) => format!(
                    "**{:.0} arrivals/s** held p99 ≤ {} ms and errors ≤ {}%",
                    h.target_rps, self.max_p99_ms, self.max_error_rate
                ),
                None => "no step held the SLO".into(),
            }
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        for (k, v) in [
            ("server", self.host.clone()),
            ("started (UTC)", self.started.clone()),
            (
                "SLO",
                format!(
                    "p99 from the due time ≤ {} ms, error answers ≤ {}%, achieved ≥ 95% of target",
                    self.max_p99_ms, self.max_error_rate
                ),
            ),
            (
                "steps",
                format!(
                    "{} s measured after {} s of warm-up each (open model)",
                    self.step_secs, self.warmup_secs
                ),
            ),
            ("backend", self.backend.clone()),
            ("fsync", self.fsync.clone()),
            ("data set", self.dataset.clone()),
            ("machine", self.machine.clone()),
            ("notes", self.notes.clone().unwrap_or_default()),
            ("command", format!("`{}`", self.command)),
        ] {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        if let Some(h) = &self.highest {
            let _ = writeln!(
                s,
                "\nHighest sustained: {:.0} arrivals/s (achieved {:.1}/s, {:.1} answers/s), p99 {:.2} ms, p99.9 {:.2} ms, server CPU {}, {} µs of server CPU per request.",
                h.target_rps,
                h.achieved_rps,
                h.rps,
                h.p99_ms,
                h.p999_ms,
                crate::report::pct(h.server_cpu_pct),
                h.server_us_per_request
                    .map_or("n/a".into(), |v| format!("{v:.0}"))
            );
        }
        if let Some(min) = self.min_rate {
            let _ = writeln!(
                s,
                "\nGate: highest sustained ≥ {min}/s — {}",
                if self.passed { "pass" } else { "**FAIL**" }
            );
        }
        let _ = writeln!(s, "\n## Steps (in the order they ran)\n");
        steps_table(&mut s, &self.steps);
        s
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("capacity.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("capacity.md"), self.markdown())?;
        std::fs::write(dir.join("capacity.html"), crate::html::capacity(self))?;
        Ok(())
    }
}

/// Loads `capacity.json` from a run folder.
pub fn load(dir: &Path) -> anyhow::Result<CapacityReport> {
    let file = dir.join("capacity.json");
    let text =
        std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The performance tables of capacity searches: one per scenario, a row
/// per backend, the command of each below.
pub fn table(reports: &[CapacityReport]) -> String {
    let mut by_scenario: std::collections::BTreeMap<&str, Vec<&CapacityReport>> =
        std::collections::BTreeMap::new();
    for r in reports {
        by_scenario.entry(&r.scenario).or_default().push(r);
    }
    let mut s = String::new();
    for (scenario, rows) in by_scenario {
        let _ = writeln!(s, "#### {scenario}: highest arrival rate at the SLO\n");
        let _ = writeln!(s, "| backend | fsync | SLO | arrivals/s held | answers/s | p99 ms | p99.9 ms | server CPU | server µs CPU/request | client CPU | first rate that broke | machine |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        for r in &rows {
            let broke = r
                .steps
                .iter()
                .filter(|x| x.passed == Some(false))
                .min_by(|x, y| x.target_rps.total_cmp(&y.target_rps))
                .map_or("none".into(), |x| {
                    format!("{:.0}/s ({})", x.target_rps, x.why)
                });
            let slo = format!("p99 ≤ {} ms, errors ≤ {}%", r.max_p99_ms, r.max_error_rate);
            match &r.highest {
                Some(h) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {slo} | **{:.0}** | {:.0} | {:.2} | {:.2} | {} | {} | {} | {broke} | {} |",
                        r.backend,
                        r.fsync,
                        h.target_rps,
                        h.rps,
                        h.p99_ms,
                        h.p999_ms,
                        crate::report::pct(h.server_cpu_pct),
                        h.server_us_per_request.map_or("n/a".into(), |v| format!("{v:.0}")),
                        crate::report::pct(h.client_cpu_pct),
                        r.machine
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {slo} | none held | | | | | | | {broke} | {} |",
                        r.backend, r.fsync, r.machine
                    );
                }
            }
        }
        let _ = writeln!(s);
        for r in &rows {
            let _ = writeln!(s, "- `{}`", r.command);
        }
        let _ = writeln!(s);
    }
    s
}

fn validate(a: &CapacityArgs) -> anyhow::Result<()> {
    runner::validate_load(&a.load)?;
    gates::latency_limit("--max-p99-ms", a.max_p99_ms)?;
    gates::percent("--max-error-rate", a.max_error_rate)?;
    gates::rate("--max-rate", a.max_rate)?;
    if let Some(m) = a.min_rate {
        gates::rate("--min-rate", m)?;
    }
    anyhow::ensure!(
        a.step_secs.is_finite() && (1.0..=3600.0).contains(&a.step_secs),
        "--step-secs {}: from 1 to 3600",
        a.step_secs
    );
    anyhow::ensure!(
        a.growth.is_finite() && a.growth > 1.0 && a.growth <= 10.0,
        "--growth {}: above 1, at most 10",
        a.growth
    );
    anyhow::ensure!(
        (1..=100).contains(&a.max_steps),
        "--max-steps: from 1 to 100"
    );
    anyhow::ensure!(
        a.scenario != ScenarioName::RestartStorm,
        "restart-storm has no arrival rate (closed model)"
    );
    Ok(())
}

/// Whether a step held the SLO, and why not.
fn judge(row: &mut StepRow, a: &CapacityArgs) {
    let mut why = Vec::new();
    if row.requests == 0 {
        why.push("no request measured".to_owned());
    }
    if row.p99_ms > a.max_p99_ms {
        why.push(format!("p99 {:.2} ms > {} ms", row.p99_ms, a.max_p99_ms));
    }
    if row.error_rate_pct > a.max_error_rate {
        why.push(format!(
            "errors {:.3}% > {}%",
            row.error_rate_pct, a.max_error_rate
        ));
    }
    if row.achieved_rps < 0.95 * row.target_rps {
        why.push(format!(
            "achieved {:.1}/s < 95% of {:.0}/s",
            row.achieved_rps, row.target_rps
        ));
    }
    row.passed = Some(why.is_empty());
    row.why = why.join("; ");
}

/// The next rate to try: up by `growth` while every step held; then
/// halfway between the highest that held and the lowest that broke; down
/// by `growth` while none held. `None`: the search is over.
fn next_rate(
    a: &CapacityArgs,
    held: Option<f64>,
    broke: Option<f64>,
    refined: usize,
) -> Option<f64> {
    match (held, broke) {
        (Some(h), None) => {
            let next = (h * a.growth).min(a.max_rate);
            (next > h).then_some(next)
        }
        (Some(h), Some(b)) => {
            let mid = ((h + b) / 2.0).round();
            (refined < a.refine && mid > h && mid < b).then_some(mid)
        }
        (None, Some(b)) => {
            let next = (b / a.growth).floor();
            (next >= 1.0).then_some(next)
        }
        (None, None) => Some(a.load.rate),
    }
}

pub async fn run(a: CapacityArgs) -> anyhow::Result<bool> {
    validate(&a)?;
    let host = a.host.trim_end_matches('/').to_owned();
    let api = Api::new(&host)?;
    let ds = Dataset::new(&a.dataset)?;
    api.wait_ready(30).await?;
    if a.prepare {
        let p = runner::prepare_and_record(&api, &a.creds, &ds, 32, &a.load.manifest_dir, &host)
            .await?;
        println!("prepared: {}", serde_json::to_string(&p)?);
    }
    runner::check_dataset(&api, &a.creds, &ds, &a.load, &host).await?;
    let out = a.output_dir.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "loadtest-runs/capacity-{}-{}",
            a.scenario.as_str(),
            runner::timestamp().replace([' ', ':'], "")
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let first_new = if matches!(a.scenario, ScenarioName::PosMix | ScenarioName::Lifecycle) {
        prepare::first_new(&api, &a.creds, &ds).await?
    } else {
        ds.cards
    };
    let creds: &Creds = &a.creds;
    let ctx = Arc::new(Ctx::new(
        ds.clone(),
        creds.pos.header(),
        creds.cc.header(),
        first_new,
    ));
    let server_pid = cpu::server_pid(a.load.server_pid, &host);
    if server_pid.is_none() {
        eprintln!("warning: the server's pid was not found (give --server-pid): no server CPU");
    }
    let open = Open::new(
        ctx.clone(),
        a.scenario,
        &host,
        a.load.max_in_flight,
        Duration::from_secs(a.load.timeout_secs),
    )?;
    let sampler = Sampler::start(api.clone(), server_pid, ctx.rec.start);
    let redis = a.load.redis.clone();
    let (mut held, mut broke): (Option<f64>, Option<f64>) = (None, None);
    let mut refined = 0;
    let mut steps: Vec<StepRow> = Vec::new();
    let mut schedule = Vec::new();
    println!(
        "capacity of {} on {host}: p99 ≤ {} ms, errors ≤ {}%, {} s per step after {} s of warm-up",
        a.scenario.as_str(),
        a.max_p99_ms,
        a.max_error_rate,
        a.step_secs,
        a.load.warmup_secs
    );
    while steps.len() < a.max_steps {
        let Some(rate) = next_rate(&a, held, broke, refined) else {
            break;
        };
        if broke.is_some() && held.is_some() {
            refined += 1;
        }
        let step = Step {
            rate,
            warmup: Duration::from_secs_f64(a.load.warmup_secs),
            measure: Duration::from_secs_f64(a.step_secs),
        };
        let start = Instant::now() + Duration::from_millis(50);
        let (ran, before) = tokio::join!(open.run_step(step, start), async {
            tokio::time::sleep_until((start + step.warmup).into()).await;
            runner::mark(&api, redis.as_deref(), server_pid).await
        });
        let after = runner::mark(&api, redis.as_deref(), server_pid).await;
        let snap = ctx.rec.snapshot();
        let mut row = runner::step_row(
            rate,
            &snap.step,
            snap.step_arrivals_sent,
            a.step_secs,
            ran.waited_for_slot,
            &Delta::between(&before, &after),
        );
        judge(&mut row, &a);
        println!(
            "  {:>8.0}/s: achieved {:.1}/s, p99 {:.2} ms, p99.9 {:.2} ms, errors {:.3}%, server CPU {}, client CPU {} — {}",
            rate,
            row.achieved_rps,
            row.p99_ms,
            row.p999_ms,
            row.error_rate_pct,
            crate::report::pct(row.server_cpu_pct),
            crate::report::pct(row.client_cpu_pct),
            if row.passed == Some(true) { "held".to_owned() } else { format!("broke: {}", row.why) }
        );
        if row.passed == Some(true) {
            held = Some(held.map_or(rate, |h: f64| h.max(rate)));
        } else {
            broke = Some(broke.map_or(rate, |b: f64| b.min(rate)));
        }
        schedule.push(Scheduled {
            rate,
            start: ran.start,
            window: ran.window,
        });
        steps.push(row);
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let server_series = sampler.finish().await;
    let snap = ctx.rec.snapshot();
    let highest = steps
        .iter()
        .filter(|s| s.passed == Some(true))
        .max_by(|x, y| x.target_rps.total_cmp(&y.target_rps))
        .cloned();
    let passed = highest
        .as_ref()
        .is_some_and(|h| a.min_rate.is_none_or(|m| h.target_rps >= m));
    let fsync = match (&a.load.fsync, &a.load.redis) {
        (Some(f), _) => f.clone(),
        (None, Some(url)) => crate::redis_info::durability(url)
            .await
            .unwrap_or_else(|e| format!("n/a ({e})")),
        (None, None) => "n/a".to_owned(),
    };
    let report = CapacityReport {
        scenario: a.scenario.as_str().to_owned(),
        host,
        started: runner::timestamp(),
        backend: a.load.backend.clone(),
        fsync,
        machine: runner::machine(),
        command: runner::command_line(),
        notes: a.notes.clone(),
        max_p99_ms: a.max_p99_ms,
        max_error_rate: a.max_error_rate,
        step_secs: a.step_secs,
        warmup_secs: a.load.warmup_secs,
        dataset: runner::dataset_flags(&ds.args),
        steps,
        highest,
        min_rate: a.min_rate,
        passed,
        series: runner::second_rows(ctx.rec.start, &snap, &server_series, &schedule, None),
    };
    report.write(&out)?;
    println!("{}", report.markdown());
    println!(
        "reports: {0}/capacity.html {0}/capacity.md {0}/capacity.json",
        out.display()
    );
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: CapacityArgs,
    }

    #[test]
    fn the_search_climbs_then_halves_the_gap_then_stops() {
        let p = P::parse_from([
            "x", "pos-mix", "--rate", "100", "--growth", "2", "--refine", "2",
        ]);
        let a = &p.a;
        assert_eq!(next_rate(a, None, None, 0), Some(100.0));
        assert_eq!(next_rate(a, Some(100.0), None, 0), Some(200.0));
        assert_eq!(next_rate(a, Some(200.0), Some(400.0), 0), Some(300.0));
        assert_eq!(next_rate(a, Some(300.0), Some(400.0), 1), Some(350.0));
        assert_eq!(next_rate(a, Some(300.0), Some(350.0), 2), None);
        // The first step broke: down until one holds.
        assert_eq!(next_rate(a, None, Some(100.0), 0), Some(50.0));
        let mut row = StepRow {
            target_rps: 100.0,
            achieved_rps: 99.0,
            requests: 1000,
            p99_ms: 12.0,
            ..StepRow::default()
        };
        judge(&mut row, a);
        assert_eq!(row.passed, Some(false));
        assert!(row.why.contains("p99 12.00 ms > 10 ms"), "{}", row.why);
    }
}
