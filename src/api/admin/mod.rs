//! Data loading, export and import (docs/api.md §8): the routes whose bodies are
//! streams. Their bodies are read here, not by the dispatcher, so that an
//! NDJSON load of any size never sits in memory whole.

mod array_body;
mod cards;
mod contacts;
mod revocation;
mod source;
mod transfer;

use actix_web::{web, HttpRequest};

use super::answer::Answer;
use super::context::Ctx;
use super::error::ApiError;
use revocation::Caller;
use source::Source;

pub async fn load_cards(
    ctx: &Ctx<'_>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Answer, ApiError> {
    let source = Source::open(req, payload, &ctx.state.settings, Caller::of(ctx)).await?;
    cards::load(ctx, source).await.map(Answer::Fields)
}

pub async fn load_contacts(
    ctx: &Ctx<'_>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Answer, ApiError> {
    let source = Source::open(req, payload, &ctx.state.settings, Caller::of(ctx)).await?;
    contacts::load(ctx, source).await.map(Answer::Fields)
}

pub async fn import(
    ctx: &Ctx<'_>,
    _req: &HttpRequest,
    payload: web::Payload,
) -> Result<Answer, ApiError> {
    let source = Source::stream(payload, &ctx.state.settings, Caller::of(ctx));
    transfer::import(ctx, source).await.map(Answer::Fields)
}

pub async fn export(
    ctx: &Ctx<'_>,
    _req: &HttpRequest,
    _payload: web::Payload,
) -> Result<Answer, ApiError> {
    Ok(Answer::Response(transfer::export(ctx)))
}
