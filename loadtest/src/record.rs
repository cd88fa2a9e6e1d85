//! Every request's timing, in HdrHistograms: latency from when the request
//! was *due* (the open model's schedule; in the closed model, from when it
//! was sent), time from the actual send (service time), and how late the
//! send was. Kept for the measured window (by due time: warm-up excluded),
//! per request name, and per second of the whole run for the charts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A send more than this after its due time is "late" (the dispatcher, or
/// the in-flight cap, held it back). The time still counts in its latency.
pub const LATE: Duration = Duration::from_millis(1);

/// Latencies are recorded in microseconds from 1 µs to 10 minutes (longer
/// saturates at the top), at 3 significant digits (2 per second: charts).
const MAX_US: u64 = 600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("constant, valid bounds")
}

fn us(d: Duration) -> u64 {
    (d.as_micros().min(MAX_US as u128) as u64).max(1)
}

/// One request as it happened.
pub struct Sample<'a> {
    pub name: &'a str,
    pub due: Instant,
    pub sent: Instant,
    pub done: Instant,
    /// The first request of an open-model arrival (its due time is the
    /// schedule's); a request that follows another's answer is not.
    pub arrival: bool,
    /// `None` for a success; the envelope's Key (or the transport failure).
    pub error: Option<&'a str>,
}

/// Counts and histograms of a set of requests.
#[derive(Clone)]
pub struct Stats {
    /// From due time (open model) or send time (closed model).
    pub latency: Histogram<u64>,
    /// From the actual send.
    pub service: Histogram<u64>,
    /// Send time minus due time.
    pub lag: Histogram<u64>,
    pub late: u64,
    pub errors: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            latency: histogram(3),
            service: histogram(3),
            lag: histogram(3),
            late: 0,
            errors: 0,
        }
    }

    fn add(&mut self, s: &Sample<'_>) {
        self.latency.saturating_record(us(s.done - s.due));
        self.service.saturating_record(us(s.done - s.sent));
        let lag = s.sent.saturating_duration_since(s.due);
        self.lag.saturating_record(us(lag));
        self.late += u64::from(lag > LATE);
        self.errors += u64::from(s.error.is_some());
    }

    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    /// The `q` quantile (0..=1) of the latency, in ms (0 without samples).
    pub fn ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latency, q)
    }
}

pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    if q >= 1.0 {
        return h.max() as f64 / 1000.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One second of the run (seconds since the recorder's start).
#[derive(Clone)]
pub struct Second {
    /// Requests due in this second (the schedule; closed model: sent).
    pub due: u64,
    /// Requests actually sent in this second.
    pub sent: u64,
    /// Arrivals (open model) actually sent in this second.
    pub arrivals_sent: u64,
    /// Latency of the requests due in this second.
    pub latency: Histogram<u64>,
    pub errors: u64,
}

impl Second {
    fn new() -> Second {
        Second {
            due: 0,
            sent: 0,
            arrivals_sent: 0,
            latency: histogram(2),
            errors: 0,
        }
    }
}

struct Inner {
    /// The measured window, by due time: [start, end).
    window: Option<(Instant, Instant)>,
    /// Every window so far, and the current one (a step of the rate).
    all: Stats,
    step: Stats,
    /// Arrivals sent (by send time) within the windows: the offered rate.
    arrivals_sent: u64,
    step_arrivals_sent: u64,
    /// Everything, warm-up included (the pos-mix rule "every answer a
    /// success" counts these errors too).
    whole_run_requests: u64,
    whole_run_errors: u64,
    by_request: BTreeMap<String, Stats>,
    errors_by_key: BTreeMap<(String, String), u64>,
    seconds: Vec<Second>,
}

pub struct Recorder {
    pub start: Instant,
    inner: Mutex<Inner>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            inner: Mutex::new(Inner {
                window: None,
                all: Stats::new(),
                step: Stats::new(),
                arrivals_sent: 0,
                step_arrivals_sent: 0,
                whole_run_requests: 0,
                whole_run_errors: 0,
                by_request: BTreeMap::new(),
                errors_by_key: BTreeMap::new(),
                seconds: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on only requests due in `[start, end)` are measured (the
    /// per-second series keep everything); a new step starts. What earlier
    /// windows measured stays in the run's totals.
    pub fn set_window(&self, start: Instant, end: Instant) {
        let mut inner = self.lock();
        inner.window = Some((start, end));
        inner.step = Stats::new();
        inner.step_arrivals_sent = 0;
    }

    pub fn window(&self) -> Option<(Instant, Instant)> {
        self.lock().window
    }

    fn second_of(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.start).as_secs() as usize
    }

    pub fn record(&self, s: &Sample<'_>) {
        let due_sec = self.second_of(s.due);
        let sent_sec = self.second_of(s.sent);
        let mut inner = self.lock();
        let need = due_sec.max(sent_sec) + 1;
        if inner.seconds.len() < need {
            inner.seconds.resize_with(need, Second::new);
        }
        let sec = &mut inner.seconds[due_sec];
        sec.due += 1;
        sec.latency.saturating_record(us(s.done - s.due));
        sec.errors += u64::from(s.error.is_some());
        inner.seconds[sent_sec].sent += 1;
        inner.seconds[sent_sec].arrivals_sent += u64::from(s.arrival);
        inner.whole_run_requests += 1;
        inner.whole_run_errors += u64::from(s.error.is_some());
        let Some((start, end)) = inner.window else {
            return;
        };
        if s.arrival && s.sent >= start && s.sent < end {
            inner.arrivals_sent += 1;
            inner.step_arrivals_sent += 1;
        }
        if s.due < start || s.due >= end {
            return;
        }
        inner.all.add(s);
        inner.step.add(s);
        inner
            .by_request
            .entry(s.name.to_owned())
            .or_insert_with(Stats::new)
            .add(s);
        if let Some(key) = s.error {
            *inner
                .errors_by_key
                .entry((s.name.to_owned(), key.to_owned()))
                .or_insert(0) += 1;
        }
    }

    /// A copy of what was measured so far.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            all: inner.all.clone(),
            step: inner.step.clone(),
            arrivals_sent: inner.arrivals_sent,
            step_arrivals_sent: inner.step_arrivals_sent,
            whole_run_requests: inner.whole_run_requests,
            whole_run_errors: inner.whole_run_errors,
            by_request: inner.by_request.clone(),
            errors_by_key: inner.errors_by_key.clone(),
            seconds: inner.seconds.clone(),
        }
    }
}

pub struct Snapshot {
    /// Every window so far.
    pub all: Stats,
    /// The current (last) window.
    pub step: Stats,
    pub arrivals_sent: u64,
    pub step_arrivals_sent: u64,
    pub whole_run_requests: u64,
    pub whole_run_errors: u64,
    pub by_request: BTreeMap<String, Stats>,
    pub errors_by_key: BTreeMap<(String, String), u64>,
    pub seconds: Vec<Second>,
}

/// The percentile spectrum of a histogram, as HdrHistogram plots it:
/// (percentile, latency ms) at ever finer steps towards the max.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(4)
        .map(|v| {
            (
                v.quantile_iterated_to() * 100.0,
                h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
            )
        })
        .filter(|(q, _)| *q < 100.0)
        .collect();
    points.dedup_by(|a, b| a.0 == b.0);
    points.push((100.0, h.max() as f64 / 1000.0));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_due_and_late_sends_are_counted() {
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        r.set_window(t0, t0 + Duration::from_secs(10));
        let ms = Duration::from_millis;
        // On time, 2 ms.
        r.record(&Sample {
            name: "a",
            due: t0,
            sent: t0,
            done: t0 + ms(2),
            arrival: true,
            error: None,
        });
        // Held back 50 ms by a stall, then answered in 2 ms: 52 ms.
        r.record(&Sample {
            name: "a",
            due: t0 + ms(10),
            sent: t0 + ms(60),
            done: t0 + ms(62),
            arrival: true,
            error: Some("Overloaded"),
        });
        // Due after the window: not measured, still in the series.
        r.record(&Sample {
            name: "b",
            due: t0 + Duration::from_secs(10),
            sent: t0 + Duration::from_secs(10),
            done: t0 + Duration::from_secs(10) + ms(1),
            arrival: true,
            error: None,
        });
        let s = r.snapshot();
        assert_eq!(s.all.count(), 2);
        assert_eq!(s.step.count(), 2);
        assert_eq!(s.arrivals_sent, 2);
        assert_eq!(s.all.late, 1);
        assert_eq!(s.all.errors, 1);
        assert!((s.all.ms(1.0) - 52.0).abs() < 0.1, "{}", s.all.ms(1.0));
        assert!((quantile_ms(&s.all.service, 1.0) - 2.0).abs() < 0.01);
        assert_eq!(s.whole_run_requests, 3);
        assert_eq!(s.seconds.len(), 11);
        assert_eq!(s.seconds[10].due, 1);
        assert_eq!(s.errors_by_key[&("a".into(), "Overloaded".into())], 1);
        let spec = spectrum(&s.all.latency);
        assert_eq!(spec.last().map(|p| p.0), Some(100.0));
        assert!(spec.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
