//! The answer of a bulk load (docs/api.md §8 "Bulk answers"): counts by outcome
//! and the rejected lines, listed up to a cap (the count keeps the total);
//! progress in the log every few seconds and per-batch metrics on the way.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::domain::RuleError;
use crate::metrics as m;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Existing,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Existing => "existing",
        }
    }
}

pub struct Report {
    /// `cards`, `contacts`, `import`: for the log and the metric's label.
    kind: &'static str,
    created: u64,
    updated: u64,
    existing: u64,
    rejected: u64,
    listed: Vec<Value>,
    max_listed: usize,
    started: Instant,
    last_progress: Instant,
    interval: Duration,
}

impl Report {
    pub fn new(kind: &'static str, max_listed: usize, progress_interval: Duration) -> Report {
        let now = Instant::now();
        Report {
            kind,
            created: 0,
            updated: 0,
            existing: 0,
            rejected: 0,
            listed: Vec::new(),
            max_listed,
            started: now,
            last_progress: now,
            interval: progress_interval,
        }
    }

    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Existing => self.existing += 1,
        }
        m::bulk_lines(self.kind, outcome.label(), 1);
    }

    /// A rejected line; `echo` adds fields that identify it (a card's
    /// `Number`).
    pub fn reject(&mut self, line: u64, error: &RuleError, echo: Option<(&str, Value)>) {
        self.rejected += 1;
        m::bulk_lines(self.kind, "rejected", 1);
        if self.listed.len() < self.max_listed {
            let mut l = json!({"Line": line, "Key": error.key.as_str(), "Value": error.message});
            if let (Some((name, value)), Value::Object(map)) = (echo, &mut l) {
                map.insert(name.to_owned(), value);
            }
            self.listed.push(l);
        }
    }

    pub fn lines(&self) -> u64 {
        self.created + self.updated + self.existing + self.rejected
    }

    /// Logs how far the load has come, at most once per interval.
    pub fn progress(&mut self) {
        if self.last_progress.elapsed() < self.interval {
            return;
        }
        self.last_progress = Instant::now();
        self.log("bulk load progress");
    }

    fn log(&self, message: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let lines = self.lines();
        let rate = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
        tracing::info!(
            kind = self.kind,
            lines,
            lines_per_sec = rate.round() as u64,
            created = self.created,
            updated = self.updated,
            existing = self.existing,
            rejected = self.rejected,
            elapsed_secs = secs.round() as u64,
            "{message}"
        );
    }

    /// The answer's fields (after the envelope).
    pub fn finish(self) -> Map<String, Value> {
        self.log("bulk load done");
        self.fields()
    }

    pub fn fields(&self) -> Map<String, Value> {
        let mut f = Map::new();
        f.insert("Created".into(), self.created.into());
        f.insert("Updated".into(), self.updated.into());
        f.insert("Existing".into(), self.existing.into());
        f.insert("Rejected".into(), self.rejected.into());
        f.insert("RejectedLines".into(), Value::Array(self.listed.clone()));
        f
    }
}
