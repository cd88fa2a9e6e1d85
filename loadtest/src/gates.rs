//! What a run must meet to pass: the values given on the command line are
//! checked before anything runs (a limit that can never be met, or that
//! means nothing, is refused), and `--limit` rules are judged on the
//! measured window (latency from the due time in the open model).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure};

use crate::record::{quantile_ms, Snapshot, Stats};
use crate::report::Check;

/// No HTTP answer over TCP, even on loopback, comes back faster: a latency
/// limit below this could never pass.
pub const MIN_LATENCY_MS: f64 = 0.05;
/// More than this is no load test of one server from one client.
pub const MAX_RATE: f64 = 1_000_000.0;

pub fn latency_limit(flag: &str, ms: f64) -> anyhow::Result<()> {
    ensure!(
        ms.is_finite() && ms >= MIN_LATENCY_MS,
        "{flag} {ms}: a latency limit must be at least {MIN_LATENCY_MS} ms (no HTTP answer is faster), and finite"
    );
    Ok(())
}

pub fn percent(flag: &str, v: f64) -> anyhow::Result<()> {
    ensure!(
        v.is_finite() && (0.0..=100.0).contains(&v),
        "{flag} {v}: a percentage is from 0 to 100"
    );
    Ok(())
}

pub fn rate(flag: &str, v: f64) -> anyhow::Result<()> {
    ensure!(
        v.is_finite() && v > 0.0 && v <= MAX_RATE,
        "{flag} {v}: a rate is above 0 and at most {MAX_RATE} per second"
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// A latency percentile, in (0, 100).
    Percentile(f64),
    Max,
    /// Error answers, percent of requests.
    ErrorRate,
    /// Late sends, percent of requests.
    Late,
    /// Requests answered per second of the window.
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Op {
    fn passes(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Less => observed < limit,
            Op::LessOrEqual => observed <= limit,
            Op::Greater => observed > limit,
            Op::GreaterOrEqual => observed >= limit,
        }
    }
}

/// A `--limit` rule: `<metric><op><value>[ for <request>]`, as goose's
/// `--threshold` writes them: `p99<10ms`, `p99.9<=25ms for confirm`,
/// `max<1s`, `error-rate<0.1%`, `late<1%`, `rps>=500`. A bare time is in
/// ms; `us` and `s` work too.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    rule: String,
    metric: Metric,
    op: Op,
    /// ms for a time, percent for a rate of requests, req/s for rps.
    value: f64,
    request: Option<String>,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rule)
    }
}

impl FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Limit, String> {
        parse(text).map_err(|e| format!("{e:#}"))
    }
}

fn parse(text: &str) -> anyhow::Result<Limit> {
    let rule = text.trim().to_owned();
    let (expr, request) = match rule.split_once(" for ") {
        Some((e, r)) if !r.trim().is_empty() => (e.trim(), Some(r.trim().to_owned())),
        Some(_) => bail!("{rule:?}: `for` names no request"),
        None => (rule.as_str(), None),
    };
    let at = expr
        .find(['<', '>'])
        .ok_or_else(|| anyhow::anyhow!("{rule:?}: no <, <=, > or >="))?;
    let (name, rest) = expr.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::LessOrEqual, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::GreaterOrEqual, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Less, v)
    } else {
        (Op::Greater, &rest[1..])
    };
    let name = name.trim();
    let value = value.trim();
    let metric = match name {
        "max" => Metric::Max,
        "error-rate" => Metric::ErrorRate,
        "late" => Metric::Late,
        "rps" => Metric::Rps,
        p if p.starts_with('p') => {
            let q: f64 = p[1..]
                .parse()
                .map_err(|_| anyhow::anyhow!("{rule:?}: {p} is not a percentile"))?;
            ensure!(
                q > 0.0 && q < 100.0,
                "{rule:?}: a percentile is above 0 and below 100 (use max for the slowest)"
            );
            Metric::Percentile(q)
        }
        other => {
            bail!("{rule:?}: unknown metric {other:?} (pNN, max, error-rate, late, rps)")
        }
    };
    let number = |v: &str| -> anyhow::Result<f64> {
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{rule:?}: {v:?} is not a number"))?;
        ensure!(n.is_finite(), "{rule:?}: the value is not finite");
        Ok(n)
    };
    let value = match metric {
        Metric::Percentile(_) | Metric::Max => {
            let ms = if let Some(v) = value.strip_suffix("us") {
                number(v)? / 1000.0
            } else if let Some(v) = value.strip_suffix("ms") {
                number(v)?
            } else if let Some(v) = value.strip_suffix('s') {
                number(v)? * 1000.0
            } else {
                number(value)?
            };
            if matches!(op, Op::Less | Op::LessOrEqual) {
                latency_limit(&format!("--limit {rule:?}:"), ms)?;
            } else {
                ensure!(ms >= 0.0, "{rule:?}: a latency is not negative");
            }
            ms
        }
        Metric::ErrorRate | Metric::Late => {
            let v = number(value.strip_suffix('%').unwrap_or(value))?;
            percent(&format!("--limit {rule:?}:"), v)?;
            ensure!(
                !(v == 0.0 && op == Op::Less || v == 100.0 && op == Op::Greater),
                "{rule:?} can never pass"
            );
            v
        }
        Metric::Rps => {
            let v = number(value)?;
            ensure!(
                v >= 0.0 && !(v == 0.0 && op == Op::Less),
                "{rule:?} can never pass"
            );
            v
        }
    };
    Ok(Limit {
        rule,
        metric,
        op,
        value,
        request,
    })
}

impl Limit {
    /// Judges the rule on the measured window (`secs` long).
    pub fn judge(&self, m: &Snapshot, secs: f64) -> Check {
        let stats: Option<&Stats> = match &self.request {
            Some(r) => m.by_request.get(r),
            None => Some(&m.all),
        };
        let Some(stats) = stats.filter(|s| s.count() > 0) else {
            return Check {
                rule: self.rule.clone(),
                observed: "no samples".into(),
                passed: false,
            };
        };
        let n = stats.count() as f64;
        let (observed, text) = match self.metric {
            Metric::Percentile(q) => {
                let v = quantile_ms(&stats.latency, q / 100.0);
                (v, format!("{v:.2} ms"))
            }
            Metric::Max => {
                let v = quantile_ms(&stats.latency, 1.0);
                (v, format!("{v:.2} ms"))
            }
            Metric::ErrorRate => {
                let v = stats.errors as f64 * 100.0 / n;
                (v, format!("{v:.4}% ({} of {n})", stats.errors))
            }
            Metric::Late => {
                let v = stats.late as f64 * 100.0 / n;
                (v, format!("{v:.4}% ({} of {n})", stats.late))
            }
            Metric::Rps => {
                let v = n / secs.max(1e-9);
                (v, format!("{v:.1} req/s"))
            }
        };
        Check {
            rule: self.rule.clone(),
            observed: text,
            passed: self.op.passes(observed, self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_impossible_ones_are_refused() {
        let l: Limit = "p99.9<=25ms for confirm".parse().unwrap();
        assert_eq!(l.metric, Metric::Percentile(99.9));
        assert_eq!(l.op, Op::LessOrEqual);
        assert_eq!(l.value, 25.0);
        assert_eq!(l.request.as_deref(), Some("confirm"));
        assert_eq!("max<1s".parse::<Limit>().unwrap().value, 1000.0);
        assert_eq!("p50<500us".parse::<Limit>().unwrap().value, 0.5);
        assert_eq!("rps>=500".parse::<Limit>().unwrap().metric, Metric::Rps);
        assert_eq!("late<1%".parse::<Limit>().unwrap().value, 1.0);
        for bad in [
            "p99<0.001ms",
            "p99<0",
            "p100<5ms",
            "p0<5ms",
            "error-rate<0%",
            "error-rate<101%",
            "late>100%",
            "rps<0",
            "p99<NaN",
            "p99<inf",
            "latency<5ms",
            "p99=5ms",
            "p99<5ms for ",
        ] {
            assert!(bad.parse::<Limit>().is_err(), "{bad} accepted");
        }
        assert!(latency_limit("--max-p99-ms", 0.001).is_err());
        assert!(latency_limit("--max-p99-ms", f64::NAN).is_err());
        assert!(latency_limit("--max-p99-ms", 10.0).is_ok());
        assert!(percent("--max-error-rate", 100.1).is_err());
        assert!(percent("--max-error-rate", -1.0).is_err());
        assert!(rate("--rate", 0.0).is_err());
        assert!(rate("--rate", 2e6).is_err());
    }
}
