//! Data loading, export and import (docs/api.md §8): the routes whose bodies are
//! streams. Their bodies are read here, not by the dispatcher, so that an
//! NDJSON load of any size never sits in memory whole.

mod array_body;
mod cards;
mod contacts;
mod revocation;
mod source;
mod transfer;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::router::RouteId;
use super::views::Fields;
use super::Ctx;
use crate::domain::ErrorKey;
use revocation::Caller;
use source::Source;

/// A bulk route's answer: the envelope with counts, or a stream (export).
pub enum Answer {
    Fields(Fields),
    Stream(HttpResponse),
}

/// Routes whose handler reads the body itself.
pub fn reads_own_body(route: RouteId) -> bool {
    matches!(
        route,
        RouteId::AdminCards | RouteId::AdminContacts | RouteId::AdminImport | RouteId::AdminExport
    )
}

pub async fn handle(
    ctx: &Ctx<'_>,
    route: RouteId,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Answer, ApiError> {
    let settings = &ctx.state.settings;
    match route {
        RouteId::AdminCards => {
            let source = Source::open(req, payload, settings, Caller::of(ctx)).await?;
            cards::load(ctx, source).await.map(Answer::Fields)
        }
        RouteId::AdminContacts => {
            let source = Source::open(req, payload, settings, Caller::of(ctx)).await?;
            contacts::load(ctx, source).await.map(Answer::Fields)
        }
        RouteId::AdminImport => {
            transfer::import(ctx, Source::stream(payload, settings, Caller::of(ctx)))
                .await
                .map(Answer::Fields)
        }
        RouteId::AdminExport => Ok(Answer::Stream(transfer::export(ctx))),
        _ => Err(ApiError::new(ErrorKey::InternalError, "internal error")),
    }
}
