//! Contacts: create-or-update and read (docs/api.md §8).

use super::context::Ctx;
use super::error::ApiError;
use super::params::Params;
use super::views::{self, Fields};
use crate::domain::contact::{parse_date, parse_text};
use crate::domain::{ContactCode, ContactPatch, ErrorKey, MobileNumber};
use crate::engine::{Command, Reply};

/// A new contact's code when the caller gives none: time-ordered and
/// random enough that two servers never pick the same one.
fn generate_code() -> ContactCode {
    let ms = crate::engine::now_ms();
    let tail: u64 = rand::random();
    ContactCode::from_trusted(format!("C{ms:011X}{:012X}", tail & 0xFFFF_FFFF_FFFF))
}

fn text_field(params: &Params, name: &str) -> Result<Option<String>, ApiError> {
    params
        .string(name)?
        .map(|v| parse_text(name, &v).map_err(ApiError::from))
        .transpose()
}

/// The contact a create-or-update names (its code, generated when absent)
/// and the fields it sets; shared with the bulk load.
pub(super) fn contact_input(params: &Params) -> Result<(ContactCode, ContactPatch), ApiError> {
    let code = match params.text("Code")? {
        Some(raw) => ContactCode::parse(&raw)?,
        None => generate_code(),
    };
    let mobile = params
        .text("MobileNumber")?
        .map(|m| MobileNumber::parse(&m))
        .transpose()?;
    let birth_date = params
        .string("BirthDate")?
        .map(|d| parse_date("BirthDate", &d))
        .transpose()?;
    let patch = ContactPatch {
        name: text_field(params, "Name")?,
        mobile,
        email: text_field(params, "Email")?,
        birth_date,
        gender: text_field(params, "Gender")?,
        city: text_field(params, "City")?,
    };
    Ok((code, patch))
}

pub async fn upsert(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let (code, patch) = contact_input(&ctx.params)?;
    let reply = ctx
        .state
        .engine
        .execute(Command::UpsertContact { code, patch })
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let Reply::Contact(view) = reply else {
        return Err(ApiError::new(ErrorKey::InternalError, "internal error"));
    };
    let mut f = views::contact(&view.contact, view.card.as_ref());
    f.insert("Created".into(), view.created.into());
    Ok(f)
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let code = ContactCode::parse(&ctx.captures[0])?;
    let (contact, card) = ctx
        .state
        .engine
        .contact(&code)
        .await
        .map_err(|e| ctx.engine_error(e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorKey::CannotFindContactCode,
                format!("no contact with the code {code}"),
            )
        })?;
    Ok(views::contact(&contact, card.as_ref()))
}
