//! Purchases and manual bonuses (docs/api.md §7).

use serde_json::json;

use super::context::Ctx;
use super::error::ApiError;
use super::views::{self, Fields};
use crate::domain::{Amount, BonusType, CardNumber, ErrorKey, Role};
use crate::engine::{
    Accrued, Command, ConfirmRequest, Confirmed, Held, HoldRequest, ManualBonusRequest, Released,
    Reply, Reversed,
};

impl Ctx<'_> {
    fn number_param(&self) -> Result<CardNumber, ApiError> {
        let raw = self.params.text("Number")?.unwrap_or_default();
        Ok(self.state.card_format.parse(&raw)?)
    }

    fn amount_param(&self, name: &str) -> Result<Amount, ApiError> {
        Ok(self.params.amount(name)?.unwrap_or(Amount::ZERO))
    }

    async fn execute(&self, command: Command) -> Result<Reply, ApiError> {
        self.state
            .engine
            .execute(command)
            .await
            .map_err(|e| self.engine_error(e))
    }
}

fn internal() -> ApiError {
    ApiError::new(ErrorKey::InternalError, "internal error")
}

pub async fn calculate(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["Number", "Amount"])?;
    let number = ctx.number_param()?;
    let amount = ctx.amount_param("Amount")?;
    let bonus_to_pay = ctx.amount_param("BonusToPay")?;
    let Reply::Calculated(c) = ctx
        .execute(Command::Calculate {
            number: number.clone(),
            amount,
            bonus_to_pay,
        })
        .await?
    else {
        return Err(internal());
    };
    if let Some(refusal) = c.refusal {
        // Confirm's Key, and what the till needs to offer the maximum.
        return Err(ApiError::from(refusal)
            .with_field("Number", json!(number.as_str()))
            .with_field("Amount", views::money(amount))
            .with_field("BonusToPay", views::money(bonus_to_pay))
            .with_field("MaxBonusToPay", views::money(c.max_bonus_to_pay)));
    }
    let mut f = Fields::new();
    f.insert("Number".into(), json!(number.as_str()));
    f.insert("Amount".into(), views::money(amount));
    f.insert("BonusToPay".into(), views::money(bonus_to_pay));
    f.insert("Accrual".into(), views::money(c.accrual));
    f.insert("MaxBonusToPay".into(), views::money(c.max_bonus_to_pay));
    f.insert("DiscountPercent".into(), views::percent(c.discount_bp));
    Ok(f)
}

pub async fn confirm(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["Number", "PurchaseId", "Amount"])?;
    let number = ctx.number_param()?;
    let purchase_id = ctx.params.id("PurchaseId")?.unwrap_or_default();
    let amount = ctx.amount_param("Amount")?;
    let bonus_to_pay = ctx.amount_param("BonusToPay")?;
    let date = ctx.params.date("Date")?;
    let Reply::Confirmed(c) = ctx
        .execute(Command::Confirm(ConfirmRequest {
            actor: ctx.actor.clone(),
            number,
            purchase_id,
            amount,
            bonus_to_pay,
            date,
        }))
        .await?
    else {
        return Err(internal());
    };
    Ok(confirmed(&c))
}

fn confirmed(c: &Confirmed) -> Fields {
    let mut f = Fields::new();
    f.insert("Number".into(), json!(c.number.as_str()));
    f.insert("PurchaseId".into(), json!(c.purchase_id));
    f.insert("Amount".into(), views::money(c.amount));
    f.insert("BonusToPay".into(), views::money(c.bonus_to_pay));
    f.insert("Accrual".into(), views::money(c.accrual));
    f.insert(
        "AccrualActiveFrom".into(),
        views::date(c.accrual_active_from),
    );
    f.insert(
        "AccrualExpireDate".into(),
        views::date(c.accrual_expire_date),
    );
    f.insert("DiscountPercent".into(), views::percent(c.discount_bp));
    f
}

/// Reserves a purchase's write-off (issue 24): confirm's parameters and
/// checks, then calculate's answer and the hold's end.
pub async fn hold(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params
        .require(&["Number", "PurchaseId", "Amount", "BonusToPay"])?;
    let number = ctx.number_param()?;
    let purchase_id = ctx.params.id("PurchaseId")?.unwrap_or_default();
    let amount = ctx.amount_param("Amount")?;
    let bonus_to_pay = ctx.amount_param("BonusToPay")?;
    let date = ctx.params.date("Date")?;
    let hold_secs = match ctx.params.unsigned("HoldSecs")? {
        Some(0) => {
            return Err(ApiError::new(
                ErrorKey::InvalidParameter,
                "HoldSecs must be at least 1 (leave it out for bonus.hold_secs)",
            ))
        }
        other => other,
    };
    let Reply::Held(h) = ctx
        .execute(Command::Hold(HoldRequest {
            actor: ctx.actor.clone(),
            number,
            purchase_id,
            amount,
            bonus_to_pay,
            date,
            hold_secs,
        }))
        .await?
    else {
        return Err(internal());
    };
    Ok(held(&h))
}

fn held(h: &Held) -> Fields {
    let mut f = Fields::new();
    f.insert("Number".into(), json!(h.number.as_str()));
    f.insert("PurchaseId".into(), json!(h.purchase_id));
    f.insert("Amount".into(), views::money(h.amount));
    f.insert("BonusToPay".into(), views::money(h.bonus_to_pay));
    f.insert("Accrual".into(), views::money(h.accrual));
    f.insert("MaxBonusToPay".into(), views::money(h.max_bonus_to_pay));
    f.insert("DiscountPercent".into(), views::percent(h.discount_bp));
    f.insert("HeldUntil".into(), views::timestamp(h.held_until));
    f
}

/// Frees an open hold; names only the purchase, as cancel does.
pub async fn release(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["PurchaseId"])?;
    let purchase_id = ctx.params.id("PurchaseId")?.unwrap_or_default();
    let number = ctx
        .state
        .engine
        .purchase_card(&purchase_id)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let Reply::Released(r) = ctx
        .execute(Command::Release {
            actor: ctx.actor.clone(),
            number,
            purchase_id,
        })
        .await?
    else {
        return Err(internal());
    };
    Ok(released(&r))
}

fn released(r: &Released) -> Fields {
    let mut f = Fields::new();
    f.insert("Number".into(), json!(r.number.as_str()));
    f.insert("PurchaseId".into(), json!(r.purchase_id));
    f.insert("Released".into(), views::money(r.released));
    f
}

/// Cancel and refund name only the purchase: find its card, then run the
/// command `make` builds for it and render the reversal.
async fn reverse(
    ctx: &Ctx<'_>,
    purchase_id: String,
    make: impl FnOnce(CardNumber, String) -> Command,
) -> Result<Fields, ApiError> {
    let number = ctx
        .state
        .engine
        .purchase_card(&purchase_id)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let Reply::Reversed(r) = ctx.execute(make(number, purchase_id)).await? else {
        return Err(internal());
    };
    Ok(reversed(&r))
}

pub async fn cancel(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["PurchaseId"])?;
    let purchase_id = ctx.params.id("PurchaseId")?.unwrap_or_default();
    let actor = ctx.actor.clone();
    reverse(ctx, purchase_id, |number, purchase_id| Command::Cancel {
        actor,
        number,
        purchase_id,
    })
    .await
}

pub async fn refund(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params.require(&["PurchaseId", "RefundId", "Amount"])?;
    let purchase_id = ctx.params.id("PurchaseId")?.unwrap_or_default();
    let refund_id = ctx.params.id("RefundId")?.unwrap_or_default();
    let amount = ctx.amount_param("Amount")?;
    let actor = ctx.actor.clone();
    reverse(ctx, purchase_id, |number, purchase_id| Command::Refund {
        actor,
        number,
        purchase_id,
        refund_id,
        amount,
    })
    .await
}

fn reversed(r: &Reversed) -> Fields {
    let mut f = Fields::new();
    f.insert("Number".into(), json!(r.number.as_str()));
    f.insert("PurchaseId".into(), json!(r.purchase_id));
    if let Some(id) = &r.refund_id {
        f.insert("RefundId".into(), json!(id));
    }
    f.insert("Amount".into(), views::money(r.amount));
    f.insert("AccrualReversed".into(), views::money(r.accrual_reversed));
    f.insert("BonusReturned".into(), views::money(r.bonus_returned));
    f.insert("Uncovered".into(), views::money(r.uncovered));
    f.insert("RefundedTotal".into(), views::money(r.refunded_total));
    f
}

pub async fn manual_bonus(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    ctx.params
        .require(&["Number", "OperationId", "Amount", "TypeCode"])?;
    let number = ctx.number_param()?;
    let operation_id = ctx.params.id("OperationId")?.unwrap_or_default();
    let amount = ctx.amount_param("Amount")?;
    if amount == Amount::ZERO {
        return Err(ApiError::new(
            ErrorKey::InvalidAmount,
            "Amount must be above 0",
        ));
    }
    let type_code = ctx.params.text("TypeCode")?.unwrap_or_default();
    let bonus_type = BonusType::parse_code(type_code.trim()).ok_or_else(|| {
        ApiError::new(
            ErrorKey::InvalidParameter,
            format!("unknown TypeCode {type_code:?}: expected 0 or 1"),
        )
    })?;
    let active_from = ctx.params.date("ActiveFrom")?;
    let expire_date = ctx.params.date("ExpireDate")?;
    let comment = ctx
        .params
        .string("Comment")?
        .map(|c| crate::domain::contact::parse_text("Comment", &c))
        .transpose()?;
    let Reply::Accrued(a) = ctx
        .execute(Command::ManualBonus(ManualBonusRequest {
            actor: ctx.actor.clone(),
            number,
            operation_id,
            amount,
            bonus_type,
            active_from,
            expire_date,
            comment,
        }))
        .await?
    else {
        return Err(internal());
    };
    Ok(accrued(&a))
}

fn accrued(a: &Accrued) -> Fields {
    let mut f = Fields::new();
    f.insert("Number".into(), json!(a.number.as_str()));
    f.insert("OperationId".into(), json!(a.operation_id));
    f.insert("Amount".into(), views::money(a.amount));
    f.insert("TypeCode".into(), json!(a.bonus_type.code_str()));
    f.insert("TypeName".into(), json!(a.bonus_type.name()));
    f.insert("ActiveFrom".into(), views::date(a.active_from));
    f.insert(
        "ExpireDate".into(),
        a.expire_date.map_or(serde_json::Value::Null, views::date),
    );
    f
}

pub async fn transactions(ctx: &Ctx<'_>) -> Result<Fields, ApiError> {
    let number = ctx.state.card_format.parse(&ctx.captures[0])?;
    let (limit, before) = ctx.params.page()?;
    let Reply::History(page) = ctx
        .execute(Command::Transactions {
            number,
            before,
            limit,
        })
        .await?
    else {
        return Err(internal());
    };
    // docs/api.md §9: pos and client may not read the history's audit fields.
    let item = match ctx.actor.role {
        Role::Pos | Role::Client => views::transaction_without_audit,
        _ => views::transaction,
    };
    Ok(views::page(&page, item))
}
