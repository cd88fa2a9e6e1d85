//! The report of a run, beside goose's own `report.html`/`report.json`:
//! the scenario's throughput as a ratio to `/health` measured in the same
//! run, client and server percentiles, the server-side view from
//! `/metrics`, errors by Key, and the thresholds. Written as
//! `summary.json`, `summary.md` and `summary.html`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

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
    pub client: ClientSide,
    pub health: Yardstick,
    /// Scenario req/s ÷ /health req/s, same server, same run.
    pub ratio_to_health: f64,
    pub requests: Vec<RequestRow>,
    /// Error answers by request and Key (client side).
    pub errors_by_key: Vec<ErrorRow>,
    pub server: ServerSide,
    pub storm: Option<StormResult>,
    pub thresholds: Vec<Check>,
    pub passed: bool,
    /// Files of this run (goose's reports, this summary).
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientSide {
    pub requests: u64,
    /// Of the steady phase (after the ramp-up), as goose counts it.
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// With goose's coordinated-omission mitigation, when it was on.
    pub co_p99_ms: Option<f64>,
    pub error_answers: u64,
    pub error_rate_pct: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Yardstick {
    pub users: usize,
    pub seconds: f64,
    pub rps: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestRow {
    pub name: String,
    pub count: u64,
    pub share_pct: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorRow {
    pub request: String,
    pub key: String,
    pub count: u64,
}

/// What the server's `/metrics` said about the run (differences of two
/// scrapes). `None`: the server exports no such metric.
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

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

impl Summary {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("summary.md"), self.markdown())?;
        std::fs::write(dir.join("summary.html"), self.html())?;
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
        let _ = writeln!(s, "| | |\n|---|---|");
        for (k, val) in [
            ("server", self.host.clone()),
            ("started (UTC)", self.started.clone()),
            ("backend", self.backend.clone()),
            ("fsync", self.fsync.clone()),
            ("machine", self.machine.clone()),
            ("users", self.users.to_string()),
            ("notes", self.notes.clone().unwrap_or_default()),
            ("command", format!("`{}`", self.command)),
        ] {
            let _ = writeln!(s, "| {k} | {val} |");
        }
        let _ = writeln!(s, "\n## Throughput against the yardstick\n");
        let _ = writeln!(s, "| | req/s | p99 ms |\n|---|---:|---:|");
        let _ = writeln!(s, "| {} | {:.0} | {:.2} |", self.scenario, c.rps, c.p99_ms);
        let _ = writeln!(
            s,
            "| /health (same server, same run) | {:.0} | {:.2} |",
            self.health.rps, self.health.p99_ms
        );
        let _ = writeln!(
            s,
            "| **ratio to /health** | **{:.3}** | |",
            self.ratio_to_health
        );
        let _ = writeln!(s, "\n## Latency: client and server\n");
        let _ = writeln!(s, "| | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| client (goose) | {:.2} | {:.2} | {:.2} |",
            c.p50_ms, c.p95_ms, c.p99_ms
        );
        if let Some(co) = c.co_p99_ms {
            let _ = writeln!(
                s,
                "| client, coordinated omission corrected | | | {co:.2} |"
            );
        }
        let _ = writeln!(
            s,
            "| server (`/metrics` histogram) | {} | {} | {} |",
            ms(v.p50_ms),
            ms(v.p95_ms),
            ms(v.p99_ms)
        );
        let _ = writeln!(s, "\nClient: {} requests in {:.1} s steady ({:.0} req/s), max {:.1} ms, {} error answers ({:.4}%).", c.requests, c.seconds, c.rps, c.max_ms, c.error_answers, c.error_rate_pct);
        let _ = writeln!(s, "\n## Server-side view (`/metrics` before and after)\n");
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
                .map(|(op, p)| format!("{op} {p:.2}"))
                .collect();
            let _ = writeln!(s, "\nStore p99 ms by operation: {}.", ops.join(", "));
        }
        for n in &v.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        let _ = writeln!(s, "\n## Requests\n");
        let _ = writeln!(s, "| request | count | share | req/s | p50 ms | p99 ms | failed |\n|---|---:|---:|---:|---:|---:|---:|");
        for r in &self.requests {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1}% | {:.0} | {:.2} | {:.2} | {} |",
                r.name, r.count, r.share_pct, r.rps, r.p50_ms, r.p99_ms, r.failed
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
                "\nServer `loyalty_errors_total` in the run: {}.",
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
        let _ = writeln!(s, "\n## Thresholds\n");
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

    /// A standalone HTML page of the same report.
    pub fn html(&self) -> String {
        let mut body = String::new();
        let mut in_table = false;
        for line in self.markdown().lines() {
            if line.starts_with('|') {
                if line.starts_with("|---") || line.starts_with("|--") {
                    continue;
                }
                if !in_table {
                    body.push_str("<table>\n");
                    in_table = true;
                }
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
                body.push_str("<tr>");
                for c in cells {
                    let _ = write!(body, "<td>{}</td>", inline(c.trim()));
                }
                body.push_str("</tr>\n");
                continue;
            }
            if in_table {
                body.push_str("</table>\n");
                in_table = false;
            }
            if let Some(h) = line.strip_prefix("## ") {
                let _ = writeln!(body, "<h2>{}</h2>", inline(h));
            } else if let Some(h) = line.strip_prefix("# ") {
                let _ = writeln!(body, "<h1>{}</h1>", inline(h));
            } else if let Some(li) = line.strip_prefix("- ") {
                let _ = writeln!(body, "<p>• {}</p>", inline(li));
            } else if !line.trim().is_empty() {
                let _ = writeln!(body, "<p>{}</p>", inline(line));
            }
        }
        if in_table {
            body.push_str("</table>\n");
        }
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{} load test</title>\n<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse;margin:.5em 0}}td{{border:1px solid #ccc;padding:.2em .6em}}tr:first-child td{{font-weight:bold;background:#f4f4f4}}code{{background:#f4f4f4}}</style></head>\n<body>\n{}<p><a href=\"report.html\">goose's detailed report</a> (per request, per second graphs, status codes, errors).</p>\n</body></html>\n",
            escape(&self.scenario),
            body
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `**bold**` and `` `code` `` of our own Markdown.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let escaped = escape(s);
    let mut bold = false;
    let mut code = false;
    let mut rest = escaped.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
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

/// The README's performance tables: one per scenario, a row per run.
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
                    "| {} | {} ms | {} | {} | {:.0} | {:.0} | {:.0} | {:.3} | {} | {} | {} |",
                    st.tills,
                    st.slo_p99_ms,
                    st.recovered_after_secs
                        .map_or("not within run".into(), |v| format!("{v:.0} s")),
                    st.all_tills_in_secs
                        .map_or("never".into(), |v| format!("{v:.1} s")),
                    st.peak_p99_ms,
                    r.client.rps,
                    r.health.rps,
                    r.ratio_to_health,
                    r.backend,
                    r.fsync,
                    r.machine
                );
            }
        } else {
            let _ = writeln!(s, "| req/s | p99 ms | server p99 ms | /health req/s | ratio to /health | errors | users | backend | fsync | machine |\n|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
            for r in &rows {
                let _ = writeln!(
                    s,
                    "| {:.0} | {:.2} | {} | {:.0} | {:.3} | {} | {} | {} | {} | {} |",
                    r.client.rps,
                    r.client.p99_ms,
                    ms(r.server.p99_ms),
                    r.health.rps,
                    r.ratio_to_health,
                    r.client.error_answers,
                    r.users,
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

/// Two runs side by side (A, B, B÷A).
pub fn compare(a: &Summary, b: &Summary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| | A | B | B/A |\n|---|---:|---:|---:|");
    let row = |s: &mut String, name: &str, x: f64, y: f64| {
        let q = if x != 0.0 {
            format!("{:.3}", y / x)
        } else {
            "n/a".into()
        };
        let _ = writeln!(s, "| {name} | {x:.2} | {y:.2} | {q} |");
    };
    let _ = writeln!(s, "| scenario | {} | {} | |", a.scenario, b.scenario);
    let _ = writeln!(
        s,
        "| notes | {} | {} | |",
        a.notes.clone().unwrap_or_default(),
        b.notes.clone().unwrap_or_default()
    );
    row(&mut s, "req/s", a.client.rps, b.client.rps);
    row(&mut s, "/health req/s", a.health.rps, b.health.rps);
    row(
        &mut s,
        "ratio to /health",
        a.ratio_to_health,
        b.ratio_to_health,
    );
    row(&mut s, "client p50 ms", a.client.p50_ms, b.client.p50_ms);
    row(&mut s, "client p99 ms", a.client.p99_ms, b.client.p99_ms);
    row(
        &mut s,
        "server p99 ms",
        a.server.p99_ms.unwrap_or(0.0),
        b.server.p99_ms.unwrap_or(0.0),
    );
    row(
        &mut s,
        "store ops/request",
        a.server.store_ops_per_request.unwrap_or(0.0),
        b.server.store_ops_per_request.unwrap_or(0.0),
    );
    row(
        &mut s,
        "error answers",
        a.client.error_answers as f64,
        b.client.error_answers as f64,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_html_and_table_render() {
        let mut s = Summary {
            scenario: "pos-mix".into(),
            command: "loyalty-loadtest run pos-mix".into(),
            passed: true,
            ..Summary::default()
        };
        s.client.rps = 1000.0;
        s.health.rps = 4000.0;
        s.ratio_to_health = 0.25;
        s.errors_by_key.push(ErrorRow {
            request: "confirm".into(),
            key: "StatusError".into(),
            count: 2,
        });
        let md = s.markdown();
        assert!(md.contains("**0.250**"));
        assert!(md.contains("| confirm | StatusError | 2 |"));
        assert!(md.contains("shard queue wait p99 ms | n/a"));
        let html = s.html();
        assert!(html.contains("<b>0.250</b>"));
        assert!(table(&[s.clone()]).contains("| 1000 |"));
        assert!(compare(&s, &s).contains("| ratio to /health | 0.25 | 0.25 | 1.000 |"));
    }
}
