//! Two builds side by side, over one or more rounds each (compare.sh runs
//! A B B A): every round, the mean and the spread of each side, B ÷ A, and
//! whether the difference is larger than the spread. Runs made with
//! different settings are refused (or flagged on every line with
//! `--allow-mismatch`); a run that failed its gates fails the comparison.

use std::fmt::Write as _;

use anyhow::bail;

use crate::report::{Settings, Summary};

/// The settings that differ between `a` and `b`, by name.
pub fn differences(a: &Summary, b: &Summary) -> Vec<String> {
    let (x, y): (&Settings, &Settings) = (&a.settings, &b.settings);
    let mut d = Vec::new();
    let mut check = |name: &str, l: String, r: String| {
        if l != r {
            d.push(format!("{name}: {l} vs {r}"));
        }
    };
    check("scenario", x.scenario.clone(), y.scenario.clone());
    check("model", x.model.clone(), y.model.clone());
    check("rates", format!("{:?}", x.rates), format!("{:?}", y.rates));
    check("users", x.users.to_string(), y.users.to_string());
    check(
        "run seconds",
        x.run_secs.to_string(),
        y.run_secs.to_string(),
    );
    check(
        "warm-up seconds",
        x.warmup_secs.to_string(),
        y.warmup_secs.to_string(),
    );
    check(
        "max in flight",
        x.max_in_flight.to_string(),
        y.max_in_flight.to_string(),
    );
    check("data set", x.dataset.clone(), y.dataset.clone());
    check("backend", x.backend.clone(), y.backend.clone());
    check("fsync", x.fsync.clone(), y.fsync.clone());
    check(
        "yardstick seconds",
        x.yardstick_secs.to_string(),
        y.yardstick_secs.to_string(),
    );
    check("machine", a.machine.clone(), b.machine.clone());
    d
}

type Metric = (&'static str, fn(&Summary) -> Option<f64>);

const METRICS: &[Metric] = &[
    ("target arrivals/s", |s| s.client.target_rps),
    ("achieved arrivals/s", |s| s.client.achieved_rps),
    ("answers/s", |s| Some(s.client.rps)),
    ("/health req/s", |s| {
        (s.health.seconds > 0.0).then_some(s.health.rps)
    }),
    ("ratio to /health", |s| s.ratio_to_health),
    ("client p50 ms", |s| Some(s.client.p50_ms)),
    ("client p99 ms", |s| Some(s.client.p99_ms)),
    ("client p99.9 ms", |s| Some(s.client.p999_ms)),
    ("client max ms", |s| Some(s.client.max_ms)),
    ("server p99 ms", |s| s.server.p99_ms),
    ("store ops/request", |s| s.server.store_ops_per_request),
    ("server CPU % of a core", |s| s.cpu.server_pct),
    ("server CPU µs/request", |s| s.cpu.server_us_per_request),
    ("client CPU % of a core", |s| s.cpu.client_pct),
    ("late sends %", |s| Some(s.client.late_pct)),
    ("error answers", |s| Some(s.client.error_answers as f64)),
];

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// (max - min) ÷ mean, percent.
fn spread(v: &[f64]) -> Option<f64> {
    let m = mean(v);
    if v.len() < 2 || m == 0.0 {
        return None;
    }
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(*x), h.max(*x))
        });
    Some((hi - lo) * 100.0 / m.abs())
}

/// The comparison as Markdown; `Err` when the settings differ and
/// mismatches are not allowed.
pub fn compare(a: &[Summary], b: &[Summary], allow_mismatch: bool) -> anyhow::Result<String> {
    anyhow::ensure!(
        !a.is_empty() && !b.is_empty(),
        "compare needs at least one run of each side"
    );
    let first = &a[0];
    let mut mismatches = Vec::new();
    for (side, runs) in [("A", a), ("B", b)] {
        for (i, r) in runs.iter().enumerate() {
            for d in differences(first, r) {
                mismatches.push(format!("{side} round {}: {d}", i + 1));
            }
        }
    }
    if !mismatches.is_empty() && !allow_mismatch {
        bail!(
            "the runs were not made with the same settings, so their figures do not compare:\n  {}\n\
             (--allow-mismatch prints them anyway, flagged)",
            mismatches.join("\n  ")
        );
    }
    let mut s = String::new();
    if !mismatches.is_empty() {
        let _ = writeln!(
            s,
            "**MISMATCHED SETTINGS — these figures do not compare:** {}\n",
            mismatches.join("; ")
        );
    }
    let failed: Vec<String> = a
        .iter()
        .map(|r| ("A", r))
        .chain(b.iter().map(|r| ("B", r)))
        .filter(|(_, r)| !r.passed)
        .map(|(side, r)| {
            format!(
                "{side} ({})",
                r.notes.clone().unwrap_or_else(|| r.started.clone())
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            s,
            "**FAILED RUNS (gates broken, see their reports):** {}\n",
            failed.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "{} {} model, {}; A: {}; B: {}\n",
        first.scenario,
        first.settings.model,
        first.backend,
        first.notes.clone().unwrap_or_default(),
        b[0].notes.clone().unwrap_or_default()
    );
    let mut head = String::from("| |");
    let mut rule = String::from("|---|");
    for (side, runs) in [("A", a), ("B", b)] {
        for i in 0..runs.len() {
            let _ = write!(head, " {side}{} |", i + 1);
            rule.push_str("---:|");
        }
        let _ = write!(head, " {side} mean | {side} spread |");
        rule.push_str("---:|---:|");
    }
    head.push_str(" B/A | beyond the spread? |");
    rule.push_str("---:|---|");
    let _ = writeln!(s, "{head}\n{rule}");
    for (name, get) in METRICS {
        let va: Vec<Option<f64>> = a.iter().map(get).collect();
        let vb: Vec<Option<f64>> = b.iter().map(get).collect();
        if va.iter().chain(&vb).all(Option::is_none) {
            continue;
        }
        let mut line = format!("| {name} |");
        let mut stats = Vec::new();
        for vals in [&va, &vb] {
            for v in vals.iter() {
                let _ = write!(line, " {} |", v.map_or("n/a".into(), |v| format!("{v:.2}")));
            }
            let known: Vec<f64> = vals.iter().flatten().copied().collect();
            if known.len() == vals.len() {
                let m = mean(&known);
                let sp = spread(&known);
                let _ = write!(
                    line,
                    " {m:.2} | {} |",
                    sp.map_or("n/a".into(), |p| format!("{p:.1}%"))
                );
                stats.push(Some((m, sp)));
            } else {
                line.push_str(" n/a | n/a |");
                stats.push(None);
            }
        }
        match (stats[0], stats[1]) {
            (Some((ma, sa)), Some((mb, sb))) if ma != 0.0 => {
                let q = mb / ma;
                let change = (q - 1.0).abs() * 100.0;
                let verdict = match (sa, sb) {
                    (Some(sa), Some(sb)) if change > sa.max(sb) => "yes",
                    (Some(_), Some(_)) => "no: within the spread",
                    _ => "unknown: one round a side",
                };
                let _ = write!(line, " {q:.3} | {verdict} |");
            }
            _ => line.push_str(" n/a | |"),
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "\nSpread: (max − min) ÷ mean of a side's rounds. Believe a B/A only when it is beyond both sides' spread."
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, p99: f64) -> Summary {
        let mut s = Summary {
            scenario: "pos-mix".into(),
            passed: true,
            ..Summary::default()
        };
        s.settings.model = "open".into();
        s.settings.rates = vec![rate];
        s.client.target_rps = Some(rate);
        s.client.rps = rate;
        s.client.p99_ms = p99;
        s
    }

    #[test]
    fn mismatched_settings_are_refused_or_flagged() {
        let a = [run(100.0, 2.0)];
        let b = [run(200.0, 2.0)];
        let e = compare(&a, &b, false).unwrap_err().to_string();
        assert!(e.contains("rates: [100.0] vs [200.0]"), "{e}");
        let flagged = compare(&a, &b, true).unwrap();
        assert!(flagged.starts_with("**MISMATCHED SETTINGS"), "{flagged}");
    }

    #[test]
    fn rounds_spread_and_verdict() {
        let a = [run(100.0, 2.0), run(100.0, 2.2)];
        let b = [run(100.0, 4.0), run(100.0, 4.1)];
        let t = compare(&a, &b, false).unwrap();
        let line = t
            .lines()
            .find(|l| l.starts_with("| client p99 ms"))
            .unwrap();
        assert!(line.contains("| 2.00 | 2.20 | 2.10 | 9.5% |"), "{line}");
        assert!(line.ends_with("| 1.929 | yes |"), "{line}");
        let mut failed = run(100.0, 2.0);
        failed.passed = false;
        let t = compare(&[failed], &b, false).unwrap();
        assert!(t.contains("**FAILED RUNS"), "{t}");
    }
}
