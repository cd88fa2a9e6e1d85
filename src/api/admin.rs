//! Data loading (API.md §8): cards from a JSON array. Existing cards keep
//! their status; every rejected element is reported with its Key.

use serde_json::{json, Value};

use super::error::ApiError;
use super::params::Params;
use super::views::Fields;
use super::Ctx;
use crate::domain::{Card, CardType, Category, ErrorKey, RuleError};
use crate::metrics as m;

/// Cards written to the store per batch.
const BATCH: usize = 1000;
/// Rejected lines listed in the answer; the count covers them all.
const MAX_LISTED_REJECTIONS: usize = 1000;

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

pub async fn load_cards(ctx: &Ctx<'_>, body: &[u8]) -> Result<Fields, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKey::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Value::Array(items) = value else {
        return Err(ApiError::new(
            ErrorKey::InvalidJson,
            "the body must be a JSON array of cards",
        ));
    };
    let (mut created, mut existing, mut rejected) = (0u64, 0u64, 0u64);
    let mut rejections = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for (i, item) in items.into_iter().enumerate() {
        let shown_number = item
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("number")))
            // Echoed as the document says, a string or null: a number as
            // its digits, anything else (an object, a list) not at all.
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(Value::String(s.clone())),
                Value::Number(n) => Some(Value::String(n.to_string())),
                _ => None,
            })
            .unwrap_or(Value::Null);
        match parse_card(ctx, item) {
            Ok(card) => batch.push(card),
            Err(e) => {
                rejected += 1;
                if rejections.len() < MAX_LISTED_REJECTIONS {
                    rejections.push(json!({"Line": i + 1, "Number": shown_number, "Key": e.key.as_str(), "Value": e.message}));
                }
            }
        }
        if batch.len() == BATCH {
            let (c, e) = flush(ctx, &mut batch).await?;
            created += c;
            existing += e;
        }
    }
    let (c, e) = flush(ctx, &mut batch).await?;
    created += c;
    existing += e;
    m::cards_loaded("created", created);
    m::cards_loaded("existing", existing);
    m::cards_loaded("rejected", rejected);
    let mut f = Fields::new();
    f.insert("Created".into(), created.into());
    f.insert("Existing".into(), existing.into());
    f.insert("Rejected".into(), rejected.into());
    f.insert("RejectedLines".into(), Value::Array(rejections));
    Ok(f)
}

async fn flush(ctx: &Ctx<'_>, batch: &mut Vec<Card>) -> Result<(u64, u64), ApiError> {
    if batch.is_empty() {
        return Ok((0, 0));
    }
    let outcome = ctx
        .state
        .engine
        .insert_cards(batch)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    batch.clear();
    let created = outcome.iter().filter(|c| **c).count() as u64;
    Ok((created, outcome.len() as u64 - created))
}
