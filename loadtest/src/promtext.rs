//! The server's side of a run, from two scrapes of its Prometheus `/metrics`
//! (before and after): counters and histograms are differenced, and
//! quantiles are estimated from histogram buckets as Prometheus'
//! `histogram_quantile` does (linear within a bucket, so only as fine as the
//! buckets are).

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format (comments and malformed lines are
    /// skipped: a metric we do not understand must not fail a run).
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Scrape { samples }
    }

    /// `after - before` for every series (a series missing before counts
    /// from 0; gauges are differenced too, and are not used).
    pub fn delta(before: &Scrape, after: &Scrape) -> Scrape {
        let index: BTreeMap<(&str, &BTreeMap<String, String>), f64> = before
            .samples
            .iter()
            .map(|s| ((s.name.as_str(), &s.labels), s.value))
            .collect();
        let samples = after
            .samples
            .iter()
            .map(|s| Sample {
                value: s.value
                    - index
                        .get(&(s.name.as_str(), &s.labels))
                        .copied()
                        .unwrap_or(0.0),
                ..s.clone()
            })
            .collect();
        Scrape { samples }
    }

    /// Adds `other`'s values series by series (the deltas of several
    /// windows summed into one).
    pub fn add(&mut self, other: &Scrape) {
        let mut index: BTreeMap<(String, BTreeMap<String, String>), usize> = self
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.name.clone(), s.labels.clone()), i))
            .collect();
        for s in &other.samples {
            match index.get(&(s.name.clone(), s.labels.clone())) {
                Some(&i) => self.samples[i].value += s.value,
                None => {
                    index.insert((s.name.clone(), s.labels.clone()), self.samples.len());
                    self.samples.push(s.clone());
                }
            }
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Names of the metrics, without histogram suffixes.
    pub fn families(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .samples
            .iter()
            .map(|s| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| s.name.strip_suffix(suffix))
                    .unwrap_or(&s.name)
                    .to_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Sum of a metric's series whose labels pass `keep`.
    pub fn sum(&self, name: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && keep(&s.labels))
            .map(|s| s.value)
            .sum()
    }

    /// Sums by the value of one label.
    pub fn sum_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let key = s.labels.get(label).cloned().unwrap_or_default();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    /// The `q` quantile (0..1) of histogram `name` (without `_bucket`), over
    /// the series whose labels pass `keep`; `None` without observations.
    pub fn quantile(
        &self,
        name: &str,
        q: f64,
        keep: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.name == bucket && keep(&s.labels))
        {
            let Some(le) = s.labels.get("le") else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            // Keyed by the bound's bits: positive floats sort as their bits do.
            by_le.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += s.value;
        }
        histogram_quantile(q, &by_le.into_values().collect::<Vec<_>>())
    }
}

/// Prometheus' estimate from cumulative `(upper bound, count)` buckets.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                // Above the last finite bucket: all we know is its bound.
                return Some(prev_bound);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket);
        }
        prev_bound = bound;
        prev_count = count;
    }
    Some(prev_bound)
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, rest) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}')?;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(' ')?),
    };
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.find('{') {
        Some(open) => (
            &series[..open],
            parse_labels(&series[open + 1..series.len() - 1])?,
        ),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        if name.is_empty() {
            return Some(labels);
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE loyalty_http_requests_total counter
loyalty_http_requests_total{route="/api/card/balance/by/{number}",method="GET",status="200"} 10
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="0.001"} 5
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="0.01"} 10
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="+Inf"} 10
"#;
    const AFTER: &str = r#"loyalty_http_requests_total{route="/api/card/balance/by/{number}",method="GET",status="200"} 110
loyalty_http_requests_total{route="/api/card/balance/by/{number}",method="GET",status="404"} 3
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="0.001"} 55
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="0.01"} 110
loyalty_http_request_duration_seconds_bucket{route="/x",method="GET",le="+Inf"} 110
loyalty_errors_total{key="StatusError"} 2
"#;

    #[test]
    fn parses_and_differences() {
        let d = Scrape::delta(&Scrape::parse(BEFORE), &Scrape::parse(AFTER));
        assert_eq!(d.sum("loyalty_http_requests_total", |_| true), 103.0);
        assert_eq!(
            d.sum("loyalty_http_requests_total", |l| l["status"] == "200"),
            100.0
        );
        assert_eq!(d.sum_by("loyalty_errors_total", "key")["StatusError"], 2.0);
        // 50 of 100 at or under 1 ms, the rest under 10 ms.
        let p50 = d
            .quantile("loyalty_http_request_duration_seconds", 0.5, |_| true)
            .unwrap();
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let p99 = d
            .quantile("loyalty_http_request_duration_seconds", 0.99, |_| true)
            .unwrap();
        assert!((p99 - (0.001 + 0.009 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        let mut twice = d.clone();
        twice.add(&d);
        assert_eq!(twice.sum("loyalty_http_requests_total", |_| true), 206.0);
        assert!(d
            .families()
            .contains(&"loyalty_http_request_duration_seconds".to_owned()));
    }

    #[test]
    fn escaped_labels_and_odd_lines() {
        let s = Scrape::parse("a{x=\"q\\\"u,o\",y=\"2\"} 1.5\nbroken line here\nb 2\n");
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.samples[0].labels["x"], "q\"u,o");
        assert_eq!(s.samples[1].value, 2.0);
    }
}
