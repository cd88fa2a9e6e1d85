//! The lines of a bulk body: an `application/x-ndjson` stream, read as it
//! arrives (never whole: memory holds one chunk and one line), or a JSON
//! array, read whole within `http.admin_max_body_bytes` as it always was
//! but parsed one element at a time (`array_body`).

use std::collections::VecDeque;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::super::body::read_body;
use super::super::error::ApiError;
use super::array_body::{ArrayBody, NOT_AN_ARRAY};
use super::revocation::{timed_out, Caller};
use crate::bulk::lines::{Line, Splitter};
use crate::config::Settings;
use crate::domain::ErrorKey;

pub struct Source {
    inner: Inner,
    ready: VecDeque<Line>,
    caller: Caller,
}

enum Inner {
    Stream {
        payload: web::Payload,
        splitter: Splitter,
        done: bool,
    },
    Array(ArrayBody),
}

/// NDJSON by its media type (and the names other tools give it).
pub fn is_ndjson(req: &HttpRequest) -> bool {
    let Some(ct) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    ]
    .iter()
    .any(|m| mime.eq_ignore_ascii_case(m))
}

impl Source {
    /// A stream of lines, whatever the media type (imports).
    pub fn stream(payload: web::Payload, settings: &Settings, caller: Caller) -> Source {
        Source {
            inner: Inner::Stream {
                payload,
                splitter: Splitter::new(settings.bulk.max_line_bytes),
                done: false,
            },
            ready: VecDeque::new(),
            caller,
        }
    }

    /// NDJSON when the request says so, else the JSON array of old.
    pub async fn open(
        req: &HttpRequest,
        payload: web::Payload,
        settings: &Settings,
        caller: Caller,
    ) -> Result<Source, ApiError> {
        if is_ndjson(req) {
            return Ok(Source::stream(payload, settings, caller));
        }
        let body = read_body(req, payload, settings.http.admin_max_body_bytes).await?;
        let items = ArrayBody::new(body).map_err(|e| {
            let message = if e == NOT_AN_ARRAY {
                e
            } else {
                format!("the body: {e}")
            };
            ApiError::new(ErrorKey::InvalidJson, message)
        })?;
        Ok(Source {
            inner: Inner::Array(items),
            ready: VecDeque::new(),
            caller,
        })
    }

    pub fn is_array(&self) -> bool {
        matches!(self.inner, Inner::Array(_))
    }

    /// The next non-blank line, while the caller may still load (checked
    /// before every line: a revoked user's load stops between two batches).
    /// Cancel-safe: the only await is the payload's next chunk, and a chunk
    /// is taken in whole once it is in.
    pub async fn next(&mut self) -> Result<Option<Line>, ApiError> {
        let deadline = self.caller.deadline();
        loop {
            self.caller.check()?;
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            match &mut self.inner {
                Inner::Array(items) => {
                    return Ok(items.next().map(|(i, v)| Line::Json(i, v)));
                }
                Inner::Stream { done: true, .. } => return Ok(None),
                Inner::Stream {
                    payload,
                    splitter,
                    done,
                } => {
                    let mut lines = Vec::new();
                    let chunk = match deadline {
                        Some(at) => tokio::time::timeout_at(at, payload.next())
                            .await
                            .map_err(|_| timed_out())?,
                        None => payload.next().await,
                    };
                    match chunk {
                        Some(Ok(chunk)) => splitter.feed(&chunk, &mut lines),
                        Some(Err(e)) => {
                            return Err(ApiError::new(
                                ErrorKey::InvalidJson,
                                format!("the body could not be read: {e}"),
                            ))
                        }
                        None => {
                            splitter.finish(&mut lines);
                            *done = true;
                        }
                    }
                    self.ready.extend(lines);
                }
            }
        }
    }
}
