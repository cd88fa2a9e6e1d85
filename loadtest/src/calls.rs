//! One request of a scenario, sent either through goose (the closed model:
//! goose times and reports it too) or straight through reqwest (the open
//! model, `open.rs`); judged by the envelope (a success is HTTP 2xx with
//! `Status: true` — the legacy mode answers business errors with 200, so
//! the status alone is not enough); recorded with its due time, send time
//! and outcome (`record.rs`), every error answer by its Key.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use goose::goose::GooseResponse;
use goose::prelude::*;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::record::{Recorder, Sample};

/// How a scenario's requests leave.
pub enum Via<'a> {
    /// goose's user (closed model, restart-storm, the yardstick).
    Goose(&'a mut GooseUser),
    /// The open model: the first request of a transaction counts from the
    /// arrival's due time; the ones that follow (they need its answer) from
    /// when they are sent.
    Open {
        http: &'a reqwest::Client,
        base: &'a str,
        due: Option<Instant>,
    },
}

/// Why a transaction stopped: an error answer (already counted), or goose's
/// own error.
pub enum Stop {
    Answer(String),
    Goose(Box<TransactionError>),
}

impl From<Box<TransactionError>> for Stop {
    fn from(e: Box<TransactionError>) -> Stop {
        Stop::Goose(e)
    }
}

impl From<Stop> for Box<TransactionError> {
    fn from(s: Stop) -> Box<TransactionError> {
        match s {
            Stop::Goose(e) => e,
            Stop::Answer(what) => Box::new(TransactionError::Custom(what)),
        }
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

/// Sends `call`; `Ok(answer)` for a success envelope. Every answer is
/// recorded; an error answer is counted by Key (and marked failed in
/// goose's metrics) and stops the transaction.
pub async fn send(
    via: &mut Via<'_>,
    rec: &Recorder,
    timeline: Option<&Timeline>,
    call: Call<'_>,
) -> Result<Value, Stop> {
    match via {
        Via::Goose(user) => send_goose(user, rec, timeline, call).await,
        Via::Open { http, base, due } => {
            let due = due.take();
            send_open(http, base, due, rec, call).await
        }
    }
}

/// The envelope's verdict: `Ok(answer)` or the error's Key.
fn judge(status: u16, text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if (200..300).contains(&status) && value.get("Status") == Some(&Value::Bool(true)) {
        return Ok(value);
    }
    Err(value
        .get("Key")
        .and_then(Value::as_str)
        .map_or_else(|| format!("HTTP{status}"), str::to_owned))
}

fn transport_key(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "ClientTimeout"
    } else {
        "Transport"
    }
}

async fn send_open(
    http: &reqwest::Client,
    base: &str,
    due: Option<Instant>,
    rec: &Recorder,
    call: Call<'_>,
) -> Result<Value, Stop> {
    let method = match call.method {
        GooseMethod::Post => reqwest::Method::POST,
        _ => reqwest::Method::GET,
    };
    let mut rb = http.request(method, format!("{base}{}", call.path));
    if !call.auth.is_empty() {
        rb = rb.header(AUTHORIZATION, call.auth);
    }
    if let Some(body) = &call.body {
        rb = rb
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let sent = Instant::now();
    let outcome = match rb.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text().await {
                Ok(text) => judge(status, &text),
                Err(e) => Err(transport_key(&e).to_owned()),
            }
        }
        Err(e) => Err(transport_key(&e).to_owned()),
    };
    rec.record(&Sample {
        name: call.name,
        due: due.unwrap_or(sent),
        sent,
        done: Instant::now(),
        arrival: due.is_some(),
        error: outcome.as_ref().err().map(String::as_str),
    });
    outcome.map_err(|key| Stop::Answer(format!("{}: {key}", call.name)))
}

async fn send_goose(
    user: &mut GooseUser,
    rec: &Recorder,
    timeline: Option<&Timeline>,
    call: Call<'_>,
) -> Result<Value, Stop> {
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
    let (outcome, text) = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text().await {
                Ok(text) => (judge(status, &text), Some(text)),
                Err(e) => (Err(transport_key(&e).to_owned()), None),
            }
        }
        Err(e) => (Err(transport_key(&e).to_owned()), None),
    };
    let done = Instant::now();
    if let Some(t) = timeline {
        t.record((done - started).as_micros());
    }
    rec.record(&Sample {
        name: call.name,
        due: started,
        sent: started,
        done,
        arrival: false,
        error: outcome.as_ref().err().map(String::as_str),
    });
    match outcome {
        Ok(value) => Ok(value),
        Err(key) => {
            let what = format!("{}: {key}", call.name);
            user.set_failure(&what, &mut request, None, text.as_deref())?;
            Err(Stop::Answer(what))
        }
    }
}
