//! The report of a run: what was asked (model, target rate, settings), what
//! the client saw (latency from each request's due time in the open model:
//! p50 to p99.9 and the max, the distribution, late sends, target against
//! achieved rate), the server's view from `/metrics` over the same window,
//! CPU of both, per-second series of both, errors by Key, and every gate.
//! Written as `summary.json`, `summary.md` and `summary.html` (charts
//! bundled: `html.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a run was asked to do: two runs compare only when these match
/// (`compare.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub scenario: String,
    /// "open" (arrival rate) or "closed" (users in a loop, goose).
    pub model: String,
    /// Open model: the arrival rate of each step, per second.
    pub rates: Vec<f64>,
    /// Closed model: goose users.
    pub users: usize,
    /// Measured seconds per step (open) or goose's run time (closed).
    pub run_secs: f64,
    pub warmup_secs: f64,
    pub max_in_flight: usize,
    /// The data set flags, as given.
    pub dataset: String,
    pub backend: String,
    pub fsync: String,
    pub yardstick_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    pub host: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub started: String,
    pub notes: Option<String>,
    pub backend: String,
    pub fsync: String,
    pub machine: String,
    pub users: usize,
    pub command: String,
    pub settings: Settings,
    pub client: ClientSide,
    pub health: Yardstick,
    /// Scenario req/s ÷ /health req/s, same server, same run; `None`
    /// without a yardstick.
    pub ratio_to_health: Option<f64>,
    pub cpu: Cpu,
    pub steps: Vec<StepRow>,
    pub requests: Vec<RequestRow>,
    /// Error answers by request and Key (client side, measured window).
    pub errors_by_key: Vec<ErrorRow>,
    pub server: ServerSide,
    /// The latency's percentile spectrum: (percentile, ms).
    pub distribution: Vec<(f64, f64)>,
    pub series: Vec<SecondRow>,
    pub storm: Option<StormResult>,
    pub thresholds: Vec<Check>,
    pub passed: bool,
    /// Files of this run.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientSide {
    /// Requests due in the measured window (all steps).
    pub requests: u64,
    /// Measured seconds (warm-up excluded).
    pub seconds: f64,
    /// What latencies count from: "due time" (open model) or "send"
    /// (closed model: coordinated omission not corrected).
    pub latency_from: String,
    /// Open model: the arrival rate asked for (the last step's, for a
    /// stepped run), and the arrivals actually sent per second.
    pub target_rps: Option<f64>,
    pub achieved_rps: Option<f64>,
    /// Answers per second (every request, those that follow another's
    /// answer included).
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// From the actual send (what the server and network took).
    pub service_p50_ms: f64,
    pub service_p99_ms: f64,
    /// Sends more than 1 ms after their due time, and the send lag.
    pub late_sends: u64,
    pub late_pct: f64,
    pub send_lag_p99_ms: f64,
    pub send_lag_max_ms: f64,
    /// Arrivals that found every in-flight slot taken.
    pub waited_for_slot: u64,
    pub error_answers: u64,
    pub error_rate_pct: f64,
    /// The whole run, warm-up included.
    pub whole_run_requests: u64,
    pub whole_run_errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Yardstick {
    pub users: usize,
    pub seconds: f64,
    pub rps: f64,
    pub p99_ms: f64,
}

/// CPU over the measured window: seconds, and percent of one core.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub client_secs: Option<f64>,
    pub server_secs: Option<f64>,
    pub client_pct: Option<f64>,
    pub server_pct: Option<f64>,
    /// Server CPU per answered request, µs.
    pub server_us_per_request: Option<f64>,
    /// The server's pid, where it was found.
    pub server_pid: Option<u32>,
}

/// One step of the arrival rate (a constant-rate run has one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepRow {
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub rps: f64,
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub error_answers: u64,
    pub error_rate_pct: f64,
    pub late_pct: f64,
    pub waited_for_slot: u64,
    pub server_p99_ms: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    pub server_us_per_request: Option<f64>,
    /// Capacity search: whether the step met the SLO, and why not.
    pub passed: Option<bool>,
    pub why: String,
}

/// One second of the run (warm-up included), client and server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondRow {
    /// Seconds since the start of the run.
    pub t: u32,
    /// In a measured window.
    pub measured: bool,
    pub target_rps: Option<f64>,
    /// Arrivals sent in this second (open model).
    pub achieved_rps: f64,
    /// Requests due (open) or sent (closed) in this second.
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
    pub server_rps: Option<f64>,
    pub server_p50_ms: Option<f64>,
    pub server_p99_ms: Option<f64>,
    pub server_errors: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    pub server_cpu_pct: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestRow {
    pub name: String,
    pub count: u64,
    pub share_pct: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorRow {
    pub request: String,
    pub key: String,
    pub count: u64,
}

/// What the server's `/metrics` said about the measured window
/// (differences of two scrapes per step). `None`: the server exports no
/// such metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSide {
    pub scraped: bool,
    pub requests: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub store_ops_per_request: Option<f64>,
    pub store_p99_ms: Option<f64>,
    pub store_p99_ms_by_operation: BTreeMap<String, f64>,
    pub shard_queue_wait_p99_ms: Option<f64>,
    pub card_cache_hit_ratio: Option<f64>,
    pub credential_cache_hit_ratio: Option<f64>,
    pub redis_commands_per_request: Option<f64>,
    pub redis_commands_per_read: Option<f64>,
    pub errors_by_key: BTreeMap<String, f64>,
    pub overloaded_rejections: f64,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormResult {
    pub tills: usize,
    pub slo_p99_ms: f64,
    /// Seconds from the first request until every later second's p99 (by
    /// completion time) stayed under the SLO; `None`: not within the run.
    pub recovered_after_secs: Option<f64>,
    /// Seconds until every till had its first success.
    pub all_tills_in_secs: Option<f64>,
    pub peak_p99_ms: f64,
    /// (second, requests completed, p99 ms)
    pub per_second: Vec<(u32, usize, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Check {
    pub rule: String,
    pub observed: String,
    pub passed: bool,
}

pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

pub fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}%"))
}

impl Summary {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("summary.md"), self.markdown())?;
        std::fs::write(dir.join("summary.html"), crate::html::summary(self))?;
        Ok(())
    }

    /// The report as Markdown (also printed at the end of a run).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.client;
        let v = &self.server;
        let _ = writeln!(
            s,
            "# {} — {}\n",
            self.scenario,
            if self.passed { "PASSED" } else { "FAILED" }
        );
        let model = match self.settings.model.as_str() {
            "open" => format!(
                "open: arrivals at {} per second, latency from each request's due time",
                self.settings
                    .rates
                    .iter()
                    .map(|r| format!("{r}"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            "closed" => format!(
                "closed (goose): {} users in a loop, latency from the send (coordinated omission not corrected)",
                self.users
            ),
            other => other.to_owned(),
        };
        let _ = writeln!(s, "| | |\n|---|---|");
        for (k, val) in [
            ("server", self.host.clone()),
            ("started (UTC)", self.started.clone()),
            ("model", model),
            (
                "measured",
                format!(
                    "{:.1} s per step after {:.1} s of warm-up (excluded from client and server figures alike)",
                    self.settings.run_secs, self.settings.warmup_secs
                ),
            ),
            ("backend", self.backend.clone()),
            ("fsync", self.fsync.clone()),
            ("data set", self.settings.dataset.clone()),
            ("machine", self.machine.clone()),
            ("notes", self.notes.clone().unwrap_or_default()),
            ("command", format!("`{}`", self.command)),
        ] {
            let _ = writeln!(s, "| {k} | {val} |");
        }
        let _ = writeln!(s, "\n## Rate\n");
        let _ = writeln!(
            s,
            "| target arrivals/s | achieved arrivals/s | answers/s | late sends (> 1 ms) | send lag p99 ms | send lag max ms | waits for an in-flight slot |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} ({:.3}%) | {:.2} | {:.2} | {} |",
            c.target_rps
                .map_or("n/a (closed model)".into(), |r| format!("{r:.1}")),
            c.achieved_rps.map_or("n/a".into(), |r| format!("{r:.1}")),
            c.rps,
            c.late_sends,
            c.late_pct,
            c.send_lag_p99_ms,
            c.send_lag_max_ms,
            c.waited_for_slot
        );
        let _ = writeln!(s, "\n## Latency: client and server\n");
        let _ = writeln!(
            s,
            "| | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            s,
            "| client, from {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            c.latency_from, c.p50_ms, c.p90_ms, c.p95_ms, c.p99_ms, c.p999_ms, c.max_ms
        );
        let _ = writeln!(
            s,
            "| client, from the send | {:.2} | | | {:.2} | | |",
            c.service_p50_ms, c.service_p99_ms
        );
        let _ = writeln!(
            s,
            "| server (`/metrics` buckets) | {} | | {} | {} | | |",
            ms(v.p50_ms),
            ms(v.p95_ms),
            ms(v.p99_ms)
        );
        let _ = writeln!(
            s,
            "\nClient: {} requests in {:.1} s measured ({:.0} answers/s), {} error answers ({:.4}%); whole run with warm-up: {} requests, {} errors. Server: {:.0} API requests in the same window.",
            c.requests, c.seconds, c.rps, c.error_answers, c.error_rate_pct, c.whole_run_requests, c.whole_run_errors, v.requests
        );
        let _ = writeln!(s, "\n## CPU (measured window)\n");
        let _ = writeln!(
            s,
            "| | CPU s | % of a core | µs per request |\n|---|---:|---:|---:|"
        );
        let secs = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            s,
            "| server{} | {} | {} | {} |",
            self.cpu
                .server_pid
                .map_or(" (pid not found: give --server-pid)".into(), |p| format!(
                    " (pid {p})"
                )),
            secs(self.cpu.server_secs),
            pct(self.cpu.server_pct),
            self.cpu
                .server_us_per_request
                .map_or("n/a".into(), |v| format!("{v:.0}"))
        );
        let _ = writeln!(
            s,
            "| client (this tool) | {} | {} | |",
            secs(self.cpu.client_secs),
            pct(self.cpu.client_pct)
        );
        if self.steps.len() > 1 {
            let _ = writeln!(s, "\n## Steps\n");
            steps_table(&mut s, &self.steps);
        }
        let _ = writeln!(s, "\n## Throughput against the yardstick\n");
        let _ = writeln!(s, "| | answers/s | p99 ms |\n|---|---:|---:|");
        let _ = writeln!(s, "| {} | {:.0} | {:.2} |", self.scenario, c.rps, c.p99_ms);
        if self.health.seconds > 0.0 {
            let _ = writeln!(
                s,
                "| /health (same server, same run, closed model) | {:.0} | {:.2} |",
                self.health.rps, self.health.p99_ms
            );
        } else {
            let _ = writeln!(s, "| /health | n/a (--yardstick-secs 0) | n/a |");
        }
        let _ = writeln!(
            s,
            "| **ratio to /health** | **{}** | |",
            ratio(self.ratio_to_health)
        );
        let _ = writeln!(s, "\n## Server-side view (`/metrics`, same window)\n");
        let _ = writeln!(s, "| | |\n|---|---|");
        for (k, val) in [
            ("requests seen by the server", format!("{:.0}", v.requests)),
            (
                "store operations per request",
                ratio(v.store_ops_per_request),
            ),
            ("store operation p99 ms", ms(v.store_p99_ms)),
            ("shard queue wait p99 ms", ms(v.shard_queue_wait_p99_ms)),
            ("card cache hit ratio", ratio(v.card_cache_hit_ratio)),
            (
                "credential cache hit ratio",
                ratio(v.credential_cache_hit_ratio),
            ),
            (
                "Redis commands per request",
                ratio(v.redis_commands_per_request),
            ),
            (
                "Redis commands per socket read",
                ratio(v.redis_commands_per_read),
            ),
            (
                "503 Overloaded rejections",
                format!("{:.0}", v.overloaded_rejections.max(0.0)),
            ),
        ] {
            let _ = writeln!(s, "| {k} | {val} |");
        }
        if !v.store_p99_ms_by_operation.is_empty() {
            let ops: Vec<String> = v
                .store_p99_ms_by_operation
                .iter()
                .map(|(op, p)| format!("{op} {p:.3}"))
                .collect();
            let _ = writeln!(s, "\nStore p99 ms by operation: {}.", ops.join(", "));
        }
        for n in &v.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        let _ = writeln!(s, "\n## Requests\n");
        let _ = writeln!(s, "| request | count | share | answers/s | p50 ms | p99 ms | p99.9 ms | max ms | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.requests {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1}% | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                r.name,
                r.count,
                r.share_pct,
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms,
                r.failed
            );
        }
        let _ = writeln!(s, "\n## Errors by Key\n");
        if self.errors_by_key.is_empty() {
            let _ = writeln!(s, "No error answers.");
        } else {
            let _ = writeln!(s, "| request | Key | count |\n|---|---|---:|");
            for e in &self.errors_by_key {
                let _ = writeln!(s, "| {} | {} | {} |", e.request, e.key, e.count);
            }
        }
        if !v.errors_by_key.is_empty() {
            let keys: Vec<String> = v
                .errors_by_key
                .iter()
                .map(|(k, n)| format!("{k} {n:.0}"))
                .collect();
            let _ = writeln!(
                s,
                "\nServer `loyalty_errors_total` in the same window: {}.",
                keys.join(", ")
            );
        }
        if let Some(st) = &self.storm {
            let _ = writeln!(s, "\n## Restart storm\n");
            let _ = writeln!(
                s,
                "{} tills; SLO p99 < {} ms; recovered after **{}**; every till logged in after {}; peak p99 {:.0} ms.",
                st.tills,
                st.slo_p99_ms,
                st.recovered_after_secs.map_or("not within the run".to_owned(), |v| format!("{v:.0} s")),
                st.all_tills_in_secs.map_or("never".to_owned(), |v| format!("{v:.1} s")),
                st.peak_p99_ms
            );
            let _ = writeln!(s, "\n| second | completed | p99 ms |\n|---:|---:|---:|");
            for (sec, n, p) in &st.per_second {
                let _ = writeln!(s, "| {sec} | {n} | {p:.1} |");
            }
        }
        let _ = writeln!(s, "\n## Gates\n");
        let _ = writeln!(s, "| rule | observed | |\n|---|---|---|");
        for t in &self.thresholds {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                t.rule,
                t.observed,
                if t.passed { "pass" } else { "**FAIL**" }
            );
        }
        if !self.files.is_empty() {
            let _ = writeln!(s, "\nFiles: {}", self.files.join(", "));
        }
        s
    }
}

/// The steps of a stepped run or a capacity search, as a Markdown table.
pub fn steps_table(s: &mut String, steps: &[StepRow]) {
    let _ = writeln!(s, "| target/s | achieved/s | answers/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | late | server p99 ms | server CPU | µs CPU/request | client CPU | SLO |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in steps {
        let _ = writeln!(
            s,
            "| {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} ({:.3}%) | {:.2}% | {} | {} | {} | {} | {} |",
            r.target_rps,
            r.achieved_rps,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.error_answers,
            r.error_rate_pct,
            r.late_pct,
            ms(r.server_p99_ms),
            pct(r.server_cpu_pct),
            r.server_us_per_request.map_or("n/a".into(), |v| format!("{v:.0}")),
            pct(r.client_cpu_pct),
            match r.passed {
                Some(true) => "pass".to_owned(),
                Some(false) => format!("**FAIL**: {}", r.why),
                None => String::new(),
            }
        );
    }
}

/// Loads `summary.json` from a run folder or a file.
pub fn load(path: &Path) -> anyhow::Result<Summary> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The performance tables (docs/performance.md): one per scenario, a row per run.
pub fn table(runs: &[Summary]) -> String {
    const ORDER: [&str; 6] = [
        "pos-mix",
        "read-only",
        "write-heavy",
        "lifecycle",
        "restart-storm",
        "health",
    ];
    let rank = |s: &str| ORDER.iter().position(|o| *o == s).unwrap_or(ORDER.len());
    let mut by_scenario: BTreeMap<(usize, &str), Vec<&Summary>> = BTreeMap::new();
    for r in runs {
        by_scenario
            .entry((rank(&r.scenario), &r.scenario))
            .or_default()
            .push(r);
    }
    let mut s = String::new();
    for ((_, scenario), rows) in by_scenario {
        let _ = writeln!(s, "#### {scenario}\n");
        if scenario == "restart-storm" {
            let _ = writeln!(s, "| tills | SLO p99 | recovered after | all tills in | peak p99 ms | req/s | /health req/s | ratio | backend | fsync | machine |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
            for r in &rows {
                let st = r.storm.clone().unwrap_or_default();
                let _ = writeln!(
                    s,
                    "| {} | {} ms | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
                    st.tills,
                    st.slo_p99_ms,
                    st.recovered_after_secs
                        .map_or("not within run".into(), |v| format!("{v:.0} s")),
                    st.all_tills_in_secs
                        .map_or("never".into(), |v| format!("{v:.1} s")),
                    st.peak_p99_ms,
                    r.client.rps,
                    r.health.rps,
                    ratio(r.ratio_to_health),
                    r.backend,
                    r.fsync,
                    r.machine
                );
            }
        } else {
            let _ = writeln!(s, "| model | target/s | answers/s | p99 ms | p99.9 ms | server p99 ms | /health req/s | ratio to /health | errors | server CPU | backend | fsync | machine |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
            for r in &rows {
                let model = if r.settings.model == "closed" {
                    format!("closed, {} users", r.users)
                } else {
                    r.settings.model.clone()
                };
                let _ = writeln!(
                    s,
                    "| {model} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    r.client.target_rps.map_or("n/a".into(), |t| format!("{t:.0}")),
                    r.client.rps,
                    r.client.p99_ms,
                    r.client.p999_ms,
                    ms(r.server.p99_ms),
                    r.health.rps,
                    ratio(r.ratio_to_health),
                    r.client.error_answers,
                    pct(r.cpu.server_pct),
                    r.backend,
                    r.fsync,
                    r.machine
                );
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
