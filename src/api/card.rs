//! Card service handlers (docs/api.md §5). Each checks, in order: required
//! parameters (all missing named at once), formats, then hands a typed
//! command to the engine, which does lookups and rules.

use super::context::Ctx;
use super::error::ApiError;
use super::params::missing_error;
use super::views::{self, Fields};
use crate::domain::{CardNumber, ContactCode, ErrorKey, MobileNumber};
use crate::engine::{Command, Reply};

/// A balance is stated as of the request: a hold expired by now counts
/// as given back, whether or not anything wrote the card since.
fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ok() -> Fields {
    Fields::new()
}

impl Ctx<'_> {
    fn card_number(&self, raw: &str) -> Result<CardNumber, ApiError> {
        Ok(self.state.card_format.parse(raw)?)
    }

    fn required_number(&self) -> Result<CardNumber, ApiError> {
        self.params.require(&["Number"])?;
        let raw = self.params.text("Number")?.unwrap_or_default();
        self.card_number(&raw)
    }

    async fn run(&self, command: Command) -> Result<Reply, ApiError> {
        self.state
            .engine
            .execute(command)
            .await
            .map_err(|e| self.engine_error(e))
    }
}

pub async fn balance_by_number(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let number = match ctx.card_number(&ctx.captures[0]) {
        Ok(number) => number,
        Err(invalid) => return seed_code_lookup(ctx, invalid).await,
    };
    let view = ctx
        .state
        .engine
        .balance(number)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(views::balance(&view, now()))
}

/// The seed's `/balance/by/{code}` shares its path with the card number:
/// a segment that is no valid card number but the code of an existing
/// contact answers that contact's balance (docs/api-decisions.md). Anything
/// else keeps the card number's answer, `InvalidCardNumber`.
async fn seed_code_lookup(ctx: &Ctx<'_>, invalid: ApiError) -> Result<Fields, ApiError> {
    let Ok(code) = ContactCode::parse(&ctx.captures[0]) else {
        return Err(invalid);
    };
    let found = ctx
        .state
        .engine
        .contact(&code)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let card = match found {
        None => {
            return Err(ApiError::new(
                invalid.key,
                format!("{}; nor is it a known contact code", invalid.message),
            ))
        }
        Some((_, None)) => return Err(no_card_for_code(&code)),
        Some((_, Some(card))) => card,
    };
    let view = ctx
        .state
        .engine
        .balance(card.number)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(views::balance(&view, now()))
}

fn no_card_for_code(code: &ContactCode) -> ApiError {
    ApiError::new(
        ErrorKey::CannotFindContactCode,
        format!("no card for the contact code {code}"),
    )
}

pub async fn balance_by_phone(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let mobile = MobileNumber::parse(&ctx.captures[0])?;
    let card = ctx
        .state
        .engine
        .card_of_mobile(&mobile)
        .await
        .map_err(|e| ctx.engine_error(e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorKey::CannotFindMobileNumber,
                format!("no card for the mobile number {mobile}"),
            )
        })?;
    let view = ctx
        .state
        .engine
        .balance(card.value.number)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(views::balance(&view, now()))
}

pub async fn balance_by_code(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let code = ContactCode::parse(&ctx.captures[0])?;
    let card = ctx
        .state
        .engine
        .card_of_contact(&code)
        .await
        .map_err(|e| ctx.engine_error(e))?
        .ok_or_else(|| no_card_for_code(&code))?;
    let view = ctx
        .state
        .engine
        .balance(card.value.number)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(views::balance(&view, now()))
}

pub async fn issue(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let number = ctx.required_number()?;
    ctx.run(Command::Issue {
        actor: ctx.actor.clone(),
        number,
    })
    .await?;
    Ok(ok())
}

pub async fn active(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let number = ctx.required_number()?;
    ctx.run(Command::Active {
        actor: ctx.actor.clone(),
        number,
    })
    .await?;
    Ok(ok())
}

pub async fn bindto(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["Number", "MobileNumber"])?;
    let number = ctx.card_number(&ctx.params.text("Number")?.unwrap_or_default())?;
    let mobile = MobileNumber::parse(&ctx.params.text("MobileNumber")?.unwrap_or_default())?;
    ctx.run(Command::BindTo {
        actor: ctx.actor.clone(),
        number,
        mobile,
    })
    .await?;
    Ok(ok())
}

/// What block and unblock share: the card by `Number` or by the contact's
/// `ContactMobileNumber`, a reason code and an optional reason name.
struct BlockTarget {
    number: CardNumber,
    mobile: Option<MobileNumber>,
    reason_code: String,
    reason_name: Option<String>,
}

async fn block_target(
    ctx: &Ctx<'_>,
    code_param: &str,
    name_param: &str,
) -> Result<BlockTarget, ApiError> {
    let p = &ctx.params;
    let mut missing = Vec::new();
    if !p.is_present("Number") && !p.is_present("ContactMobileNumber") {
        missing.extend(["Number", "ContactMobileNumber"]);
    }
    if !p.is_present(code_param) {
        missing.push(code_param);
    }
    if !missing.is_empty() {
        return Err(missing_error(&missing));
    }
    let number = p.text("Number")?.map(|n| ctx.card_number(&n)).transpose()?;
    let mobile = p
        .text("ContactMobileNumber")?
        .map(|m| MobileNumber::parse(&m))
        .transpose()?;
    let reason_code = p.text(code_param)?.unwrap_or_default().trim().to_owned();
    let reason_name = p.string(name_param)?.map(|s| s.chars().take(256).collect());
    let number = match (number, &mobile) {
        (Some(n), _) => n,
        (None, Some(m)) => ctx
            .state
            .engine
            .card_for_block(m)
            .await
            .map_err(|e| ctx.engine_error(e))?,
        (None, None) => unreachable!("checked as missing above"),
    };
    Ok(BlockTarget {
        number,
        mobile,
        reason_code,
        reason_name,
    })
}

pub async fn block(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let t = block_target(ctx, "BlockReasonCode", "BlockReasonName").await?;
    ctx.run(Command::Block {
        actor: ctx.actor.clone(),
        number: t.number,
        mobile: t.mobile,
        reason_code: t.reason_code,
        reason_name: t.reason_name,
    })
    .await?;
    Ok(ok())
}

pub async fn unblock(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let t = block_target(ctx, "UnBlockReasonCode", "UnBlockReasonName").await?;
    ctx.run(Command::Unblock {
        actor: ctx.actor.clone(),
        number: t.number,
        mobile: t.mobile,
        reason_code: t.reason_code,
        reason_name: t.reason_name,
    })
    .await?;
    Ok(ok())
}

pub async fn history(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let number = ctx.card_number(&ctx.captures[0])?;
    let (limit, before) = ctx.params.page()?;
    let Reply::History(page) = ctx
        .run(Command::History {
            number,
            before,
            limit,
        })
        .await?
    else {
        return Err(ApiError::new(ErrorKey::InternalError, "internal error"));
    };
    Ok(views::page(&page, views::history_entry))
}
