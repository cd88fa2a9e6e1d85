//! One request of a scenario: sent through goose (so that it is timed and
//! reported by goose), judged by the envelope (a success is HTTP 2xx with
//! `Status: true` — the legacy mode answers business errors with 200, so
//! the status alone is not enough), and every error answer counted by its
//! Key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use goose::goose::GooseResponse;
use goose::prelude::*;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

/// Requests and error answers, by request name and Key.
#[derive(Default)]
pub struct Tally {
    pub requests: AtomicU64,
    pub errors: Mutex<BTreeMap<(String, String), u64>>,
}

impl Tally {
    pub fn error(&self, request: &str, key: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors
            .entry((request.to_owned(), key.to_owned()))
            .or_insert(0) += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Completion times and latencies of every request (restart-storm only):
/// per-second percentiles over the run. Time counts from the first request
/// sent, not from the start of goose (which builds one HTTP client per
/// user first: seconds, for thousands of users).
pub struct Timeline {
    start: OnceLock<Instant>,
    /// (completed at, ms since the first request; latency, µs)
    pub points: Mutex<Vec<(u32, u32)>>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            start: OnceLock::new(),
            points: Mutex::new(Vec::with_capacity(1 << 20)),
        }
    }

    /// A request is being sent now.
    fn sending(&self, now: Instant) {
        self.start.get_or_init(|| now);
    }

    /// Milliseconds since the first request.
    pub fn elapsed_ms(&self) -> u64 {
        self.start
            .get()
            .map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    fn record(&self, latency_us: u128) {
        let at = self.elapsed_ms().min(u32::MAX as u64) as u32;
        let lat = latency_us.min(u32::MAX as u128) as u32;
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, lat));
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

/// A request: name (as reports show it), method, path, Authorization
/// header, optional JSON body.
pub struct Call<'a> {
    pub name: &'static str,
    pub method: GooseMethod,
    pub path: &'a str,
    pub auth: &'a str,
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    pub fn get(name: &'static str, path: &'a str, auth: &'a str) -> Call<'a> {
        Call {
            name,
            method: GooseMethod::Get,
            path,
            auth,
            body: None,
        }
    }

    pub fn post(name: &'static str, path: &'a str, auth: &'a str, body: Value) -> Call<'a> {
        Call {
            name,
            method: GooseMethod::Post,
            path,
            auth,
            body: Some(body),
        }
    }
}

/// Sends `call`; `Ok(answer)` for a success envelope. An error answer is
/// counted by Key, marked failed in goose's metrics, and returned as the
/// transaction's error (the transaction stops there).
pub async fn send(
    user: &mut GooseUser,
    tally: &Tally,
    timeline: Option<&Timeline>,
    call: Call<'_>,
) -> Result<Value, Box<TransactionError>> {
    let mut rb = user.get_request_builder(&call.method, call.path)?;
    if !call.auth.is_empty() {
        rb = rb.header(AUTHORIZATION, call.auth);
    }
    if let Some(body) = &call.body {
        rb = rb
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let request = GooseRequest::builder()
        .name(call.name)
        .method(call.method)
        .set_request_builder(rb)
        .build();
    let started = Instant::now();
    if let Some(t) = timeline {
        t.sending(started);
    }
    let GooseResponse {
        mut request,
        response,
    } = user.request(request).await?;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let (status, text) = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => {
            let key = if e.is_timeout() {
                "ClientTimeout"
            } else {
                "Transport"
            };
            tally.error(call.name, key);
            if let Some(t) = timeline {
                t.record(started.elapsed().as_micros());
            }
            return user
                .set_failure(&format!("{}: {key}", call.name), &mut request, None, None)
                .map(|()| Value::Null);
        }
    };
    if let Some(t) = timeline {
        t.record(started.elapsed().as_micros());
    }
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) && value.get("Status") == Some(&Value::Bool(true)) {
        return Ok(value);
    }
    let key = value
        .get("Key")
        .and_then(Value::as_str)
        .map_or_else(|| format!("HTTP{status}"), str::to_owned);
    tally.error(call.name, &key);
    user.set_failure(
        &format!("{}: {key}", call.name),
        &mut request,
        None,
        Some(&text),
    )
    .map(|()| Value::Null)
}
