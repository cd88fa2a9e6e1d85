//! Card loading (docs/api.md §8). A JSON array loads as it always has: missing
//! cards are created, existing ones are left alone. NDJSON streams lines
//! of any number, and a line for a card that exists and is still New also
//! sets its category and type (`Updated`); any other card keeps its state
//! (`Existing`). Either way a bad line is reported and the load goes on,
//! and a second run of the same data creates nothing.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::super::context::Ctx;
use super::super::error::ApiError;
use super::super::params::Params;
use super::super::views::Fields;
use super::source::Source;
use crate::bulk::lines::Line;
use crate::bulk::report::{Outcome, Report};
use crate::domain::{Card, CardNumber, CardType, Category, ErrorKey, RuleError};
use crate::metrics as m;
use crate::store::CardLoad;

fn reference<T>(
    p: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    default: T,
) -> Result<T, RuleError> {
    match p.text(name).map_err(|e| RuleError::new(e.key, e.message))? {
        None => Ok(default),
        Some(raw) => parse(raw.trim()).ok_or_else(|| {
            RuleError::new(
                ErrorKey::InvalidParameter,
                format!("unknown {name} {raw:?}"),
            )
        }),
    }
}

fn parse_card(ctx: &Ctx<'_>, value: Value) -> Result<Card, RuleError> {
    let Value::Object(map) = value else {
        return Err(RuleError::new(
            ErrorKey::InvalidJson,
            "each element must be a JSON object",
        ));
    };
    let p = Params::from_object(map);
    if !p.is_present("Number") {
        return Err(RuleError::new(
            ErrorKey::RequiredParameterNotSpecified,
            "Number",
        ));
    }
    let raw = p
        .text("Number")
        .map_err(|e| RuleError::new(e.key, e.message))?
        .unwrap_or_default();
    let number = ctx.state.card_format.parse(&raw)?;
    let category = reference(&p, "CategoryCode", Category::parse_code, Category::Plastic)?;
    let card_type = reference(&p, "TypeCode", CardType::parse_code, CardType::Bonus)?;
    Ok(Card::new(number, category, card_type))
}

/// A rejected line's `Number`, echoed as the document says: a string or
/// null (a number as its digits, anything else not at all).
fn shown_number(value: &Value) -> Value {
    value
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("number")))
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(Value::String(s.clone())),
            Value::Number(n) => Some(Value::String(n.to_string())),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

struct Batch {
    cards: Vec<Card>,
    /// The numbers in `cards`: a number seen again waits for the next
    /// batch, so that its lines apply in their order.
    numbers: HashSet<CardNumber>,
    /// The JSON array's rule: existing cards are never changed.
    create_only: bool,
}

pub async fn load(ctx: &Ctx<'_>, mut source: Source) -> Result<Fields, ApiError> {
    let bulk = &ctx.state.settings.bulk;
    let size = bulk.card_batch.max(1);
    let mut report = Report::new(
        "cards",
        bulk.max_listed_rejections,
        Duration::from_secs(bulk.progress_interval_secs.max(1)),
    );
    let mut batch = Batch {
        cards: Vec::with_capacity(size),
        numbers: HashSet::with_capacity(size),
        create_only: source.is_array(),
    };
    let result = async {
        while let Some(line) = source.next().await? {
            match line {
                Line::Rejected(n, e) => report.reject(n, &e, Some(("Number", Value::Null))),
                Line::Json(n, value) => {
                    let shown = shown_number(&value);
                    match parse_card(ctx, value) {
                        Ok(card) => {
                            if batch.numbers.contains(&card.number) {
                                flush(ctx, &mut batch, &mut report).await?;
                            }
                            batch.numbers.insert(card.number.clone());
                            batch.cards.push(card);
                            if batch.cards.len() >= size {
                                flush(ctx, &mut batch, &mut report).await?;
                            }
                        }
                        Err(e) => report.reject(n, &e, Some(("Number", shown))),
                    }
                }
            }
        }
        flush(ctx, &mut batch, &mut report).await
    }
    .await;
    match result {
        Ok(()) => Ok(report.finish()),
        // What was loaded stays loaded: the answer says how far it got.
        Err(mut e) => {
            e.fields.extend(report.finish());
            Err(e)
        }
    }
}

async fn flush(ctx: &Ctx<'_>, batch: &mut Batch, report: &mut Report) -> Result<(), ApiError> {
    if batch.cards.is_empty() {
        return Ok(());
    }
    let engine = &ctx.state.engine;
    let outcomes: Vec<Outcome> = if batch.create_only {
        engine
            .insert_cards(&batch.cards)
            .await
            .map_err(|e| ctx.engine_error(e))?
            .into_iter()
            .map(|created| {
                if created {
                    Outcome::Created
                } else {
                    Outcome::Existing
                }
            })
            .collect()
    } else {
        engine
            .load_cards(&batch.cards)
            .await
            .map_err(|e| ctx.engine_error(e))?
            .into_iter()
            .map(|l| match l {
                CardLoad::Created => Outcome::Created,
                CardLoad::Updated => Outcome::Updated,
                CardLoad::Existing => Outcome::Existing,
            })
            .collect()
    };
    batch.cards.clear();
    batch.numbers.clear();
    let (mut created, mut existing) = (0, 0);
    for o in outcomes {
        match o {
            Outcome::Created => created += 1,
            _ => existing += 1,
        }
        report.count(o);
    }
    m::cards_loaded("created", created);
    m::cards_loaded("existing", existing);
    report.progress();
    Ok(())
}
