//! Reading a request body within its size limit and, for the dispatcher's
//! JSON bodies, its deadlines. Its own module so that the bulk handlers
//! (which read their bodies themselves) and the dispatcher share it without
//! importing each other.

use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::domain::ErrorKey;

/// Reads at most `limit` bytes; more is 413 without reading the rest.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    read_body_within(req, payload, limit, None).await
}

/// How long a body may take: in all, and between two chunks.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlines {
    pub total: Duration,
    pub idle: Duration,
}

/// [`read_body`], and 408 `RequestTimeout` when the body does not arrive in
/// time: an authenticated client trickling a body held its connection and
/// request forever (issue 28, item 4).
pub async fn read_body_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    deadlines: Option<BodyDeadlines>,
) -> Result<web::Bytes, ApiError> {
    let end = deadlines.map(|d| tokio::time::Instant::now() + d.total);
    let too_large = || {
        ApiError::new(
            ErrorKey::PayloadTooLarge,
            format!("the body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    loop {
        let next = match (deadlines, end) {
            (Some(d), Some(end)) => {
                let by = end.min(tokio::time::Instant::now() + d.idle);
                match tokio::time::timeout_at(by, payload.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Err(ApiError::new(
                            ErrorKey::RequestTimeout,
                            "the request body did not arrive in time",
                        ))
                    }
                }
            }
            _ => payload.next().await,
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorKey::InvalidJson,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
