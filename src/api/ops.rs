//! Unauthenticated operations routes (docs/api.md §10).

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;

use super::context::AppState;
use super::error::ApiError;
use super::views::Fields;
use crate::domain::ErrorKey;
use crate::metrics as m;

pub fn health() -> Result<Fields, ApiError> {
    Ok(Fields::new())
}

pub async fn ready(state: &AppState) -> Result<Fields, ApiError> {
    let answered = state.engine.ping_store().await;
    m::store_up(answered.is_ok());
    answered.map_err(|e| {
        // The store's own words go to the log, not to the caller.
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(ErrorKey::StoreUnavailable, "the store does not answer")
    })?;
    Ok(Fields::new())
}

pub async fn metrics(state: &AppState) -> HttpResponse {
    // Readiness as Prometheus sees it: a scrape of an instance whose store
    // is away still succeeds (up = 1), so the store is pinged here too. The
    // ping is bounded by store.command_timeout_ms, well under a scrape timeout.
    let answered = state.engine.ping_store().await;
    if let Err(e) = &answered {
        tracing::warn!(error = %e, "store ping at scrape failed");
    }
    m::store_up(answered.is_ok());
    // Queue depths are sampled when scraped rather than on every command.
    for (shard, depth) in state.engine.queue_depths().into_iter().enumerate() {
        m::shard_queue_depth(shard, depth);
    }
    for (shard, (cards, bytes)) in state.engine.owned_sizes().into_iter().enumerate() {
        m::owned_size(shard, cards, bytes);
    }
    HttpResponse::Ok()
        .content_type(ContentType(
            "text/plain; version=0.0.4; charset=utf-8"
                .parse()
                .expect("a valid mime type"),
        ))
        .body(state.metrics.render())
}

/// The OpenAPI document as it is: not wrapped in the envelope, so that
/// OpenAPI tools read it.
pub fn openapi(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}
