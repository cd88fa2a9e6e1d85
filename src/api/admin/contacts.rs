//! Contact loading (docs/api.md §8): each line is a `POST /api/contact` (the
//! same claim protocol keeps a mobile number with one contact), and an
//! optional `CardNumber` is issued if New, bound and, with `Activate`,
//! activated through the card's own commands, in the card's turn, with the
//! administrator in its history. Lines run concurrently, a bounded number
//! at a time; two lines about the same contact or card apply in either
//! order.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::super::contact::contact_input;
use super::super::context::Ctx;
use super::super::error::ApiError;
use super::super::params::Params;
use super::super::views::Fields;
use super::source::Source;
use crate::bulk::lines::Line;
use crate::bulk::report::{Outcome, Report};
use crate::domain::{
    Actor, CardNumber, CardStatus, ContactCode, ContactPatch, ErrorKey, RuleError,
};
use crate::engine::{Command, Engine, EngineError, Reply};

/// A full shard is a moment's congestion, not a bad line: wait and retry.
const OVERLOAD_RETRIES: usize = 50;
const OVERLOAD_PAUSE: Duration = Duration::from_millis(20);

struct ContactLine {
    code: ContactCode,
    patch: ContactPatch,
    card: Option<CardNumber>,
    activate: bool,
}

fn rule(e: ApiError) -> RuleError {
    RuleError::new(e.key, e.message)
}

fn parse_line(ctx: &Ctx<'_>, value: Value) -> Result<ContactLine, RuleError> {
    let Value::Object(map) = value else {
        return Err(RuleError::new(
            ErrorKey::InvalidJson,
            "each line must be a JSON object",
        ));
    };
    let p = Params::from_object(map);
    let (code, patch) = contact_input(&p).map_err(rule)?;
    let card = p
        .text("CardNumber")
        .map_err(rule)?
        .map(|n| ctx.state.card_format.parse(&n))
        .transpose()?;
    let activate = p.flag("Activate").map_err(rule)?;
    if activate && card.is_none() {
        return Err(RuleError::new(
            ErrorKey::RequiredParameterNotSpecified,
            "CardNumber (Activate needs the card)",
        ));
    }
    Ok(ContactLine {
        code,
        patch,
        card,
        activate,
    })
}

async fn run(engine: &Engine, command: Command) -> Result<Reply, EngineError> {
    let mut tries = 0;
    loop {
        match engine.execute(command.clone()).await {
            Err(EngineError::Overloaded) if tries < OVERLOAD_RETRIES => {
                tries += 1;
                tokio::time::sleep(OVERLOAD_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// One line; a contact and card already as the line says are `Existing`.
async fn apply(engine: &Engine, admin: &Actor, line: ContactLine) -> Result<Outcome, EngineError> {
    let stored = engine.store().get_contact(&line.code).await?;
    let mut created = false;
    let mut changed = false;
    let unchanged = stored.as_ref().and_then(|c| {
        let mut patched = c.value.clone();
        patched.apply(line.patch.clone());
        (patched == c.value).then_some(patched)
    });
    let contact = match unchanged {
        Some(contact) => contact,
        None => match run(
            engine,
            Command::UpsertContact {
                code: line.code.clone(),
                patch: line.patch,
            },
        )
        .await?
        {
            Reply::Contact(view) => {
                created = view.created;
                changed = true;
                view.contact
            }
            other => return Err(EngineError::Internal(format!("unexpected {other:?}"))),
        },
    };
    if let Some(number) = line.card {
        // Uncached: the line's report (Existing, or which commands run)
        // is decided on this read, and no cached read gates a write
        // (docs/redis.md). A cached card blocked or activated elsewhere
        // was reported Existing, or the activation wrongly refused.
        let card = engine.card_uncached(&number).await?;
        let mobile = contact.mobile.clone().ok_or_else(|| {
            RuleError::new(
                ErrorKey::RequiredParameterNotSpecified,
                "MobileNumber (binding a card finds the contact by it)",
            )
        })?;
        let actor = admin.clone();
        if card.status == CardStatus::New {
            run(
                engine,
                Command::Issue {
                    actor: actor.clone(),
                    number: number.clone(),
                },
            )
            .await?;
            changed = true;
        }
        if card.contact.as_ref() != Some(&contact.code) {
            run(
                engine,
                Command::BindTo {
                    actor: actor.clone(),
                    number: number.clone(),
                    mobile,
                },
            )
            .await?;
            changed = true;
        }
        if line.activate && card.status != CardStatus::Active {
            run(engine, Command::Active { actor, number }).await?;
            changed = true;
        }
    }
    Ok(if created {
        Outcome::Created
    } else if changed {
        Outcome::Updated
    } else {
        Outcome::Existing
    })
}

pub async fn load(ctx: &Ctx<'_>, mut source: Source) -> Result<Fields, ApiError> {
    let bulk = &ctx.state.settings.bulk;
    let parallel = bulk.parallelism.max(1);
    let mut report = Report::new(
        "contacts",
        bulk.max_listed_rejections,
        Duration::from_secs(bulk.progress_interval_secs.max(1)),
    );
    let engine = &*ctx.state.engine;
    let admin = &ctx.actor;
    let mut in_flight = FuturesUnordered::new();
    let mut source_done = false;
    let result: Result<(), ApiError> = async {
        loop {
            let finished = if !source_done && in_flight.len() < parallel {
                tokio::select! {
                    biased;
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => Some(done),
                    line = source.next() => {
                        match line? {
                            None => source_done = true,
                            Some(Line::Rejected(n, e)) => report.reject(n, &e, None),
                            Some(Line::Json(n, value)) => match parse_line(ctx, value) {
                                Ok(line) => in_flight.push(async move {
                                    (n, apply(engine, admin, line).await)
                                }),
                                Err(e) => report.reject(n, &e, None),
                            },
                        }
                        None
                    }
                }
            } else {
                match in_flight.next().await {
                    Some(done) => Some(done),
                    None => break,
                }
            };
            if let Some((n, outcome)) = finished {
                match outcome {
                    Ok(o) => report.count(o),
                    Err(EngineError::Rule(e)) => report.reject(n, &e, None),
                    Err(EngineError::Contention(what)) => report.reject(
                        n,
                        &RuleError::new(
                            ErrorKey::Overloaded,
                            format!("too many concurrent changes to {what}"),
                        ),
                        None,
                    ),
                    // The store or the engine is down: stop, and tell how far
                    // the load got.
                    Err(e) => return Err(ctx.engine_error(e)),
                }
                report.progress();
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(report.finish()),
        Err(mut e) => {
            e.fields.extend(report.finish());
            Err(e)
        }
    }
}

#[cfg(test)]
#[path = "contacts_tests.rs"]
mod tests;
