//! Purchases against a card's ledger (docs/api.md §7): what a purchase earns and
//! may write off, and how confirm, cancel and refund change the ledger.
//! Pure: dates and rules come in as parameters.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use super::card::Card;
use super::error::{ErrorKey, RuleError};
use super::ledger::{Allocation, LotSource};
use super::money::Amount;
use super::reference::{BonusType, CardStatus, CardType};

/// The configured purchase rules; percentages in basis points (5% = 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BonusRules {
    pub accrual_bp: i64,
    pub activation_delay_days: i64,
    pub expiry_days: i64,
    pub max_writeoff_bp: i64,
    pub discount_bp: i64,
    /// How far back a purchase's `Date` may lie: offline tills send the
    /// past, but never beyond what the idempotency records still cover.
    pub date_max_age_secs: i64,
    /// How far ahead: a till's clock may run ahead, or its local date be
    /// ahead of the UTC date, by this much at most.
    pub date_max_ahead_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calculation {
    pub accrual: Amount,
    pub max_bonus_to_pay: Amount,
    pub discount_bp: i64,
}

/// What the engine keeps about a confirmed purchase, to answer replays and
/// to cancel or refund it later. Stored in Redis as JSON with one-letter
/// names (one record per purchase for the whole retention: its size is RAM
/// per purchase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRecord {
    #[serde(rename = "m")]
    pub amount: Amount,
    #[serde(rename = "b", default, skip_serializing_if = "Amount::is_zero")]
    pub bonus_paid: Amount,
    #[serde(rename = "a", default, skip_serializing_if = "Amount::is_zero")]
    pub accrual: Amount,
    /// The dates of the lot the accrual went into (a Cash lot of source
    /// `purchase`): what a reversal takes it back from, on whichever card
    /// the lot has moved to.
    #[serde(rename = "d")]
    pub accrual_dates: (Date, Date),
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub writeoffs: Vec<Allocation>,
    /// Cumulative money refunded, bonuses of the accrual taken back, and
    /// written-off bonuses given back.
    #[serde(rename = "r", default, skip_serializing_if = "Amount::is_zero")]
    pub refunded: Amount,
    #[serde(rename = "ar", default, skip_serializing_if = "Amount::is_zero")]
    pub accrual_reversed: Amount,
    #[serde(rename = "br", default, skip_serializing_if = "Amount::is_zero")]
    pub bonus_returned: Amount,
    #[serde(rename = "c", default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
}

/// The ledger effect of a cancel or refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reversal {
    /// Bonuses of the purchase's accrual taken back.
    pub accrual_reversed: Amount,
    /// Written-off bonuses given back (with their original dates).
    pub bonus_returned: Amount,
    /// Part of the accrual already spent that the balance could not cover:
    /// added to the card's debt (`Ledger::debt`).
    pub uncovered: Amount,
}

fn accrues(card: &Card) -> bool {
    matches!(card.card_type, CardType::Bonus | CardType::BonusDiscount)
}

fn discounts(card: &Card) -> bool {
    matches!(card.card_type, CardType::Discount | CardType::BonusDiscount)
}

/// What a purchase of `amount` paying `bonus_to_pay` with bonuses would
/// earn, and what may be written off at most.
pub fn calculate(
    rules: &BonusRules,
    card: &Card,
    amount: Amount,
    bonus_to_pay: Amount,
    today: Date,
) -> Calculation {
    let max_bonus_to_pay = if card.status == CardStatus::Active {
        card.ledger
            .usable(today)
            .min(amount.percent_bp(rules.max_writeoff_bp))
    } else {
        Amount::ZERO
    };
    let accrual = if accrues(card) {
        amount
            .saturating_sub(bonus_to_pay)
            .percent_bp(rules.accrual_bp)
    } else {
        Amount::ZERO
    };
    Calculation {
        accrual,
        max_bonus_to_pay,
        discount_bp: if discounts(card) {
            rules.discount_bp
        } else {
            0
        },
    }
}

/// Status rules of a purchase: accrual needs Issued or Active, a write-off
/// needs Active.
pub fn check_status(card: &Card, bonus_to_pay: Amount) -> Result<(), RuleError> {
    let refuse = |m: &str| Err(RuleError::new(ErrorKey::StatusError, m));
    match card.status {
        CardStatus::New => refuse("the card is New: purchases need an issued card"),
        CardStatus::Blocked => refuse("the card is Blocked: no purchases on a blocked card"),
        CardStatus::Issued if bonus_to_pay > Amount::ZERO => {
            refuse("the card is not Active: bonuses can be written off only from an Active card")
        }
        CardStatus::Issued | CardStatus::Active => Ok(()),
    }
}

/// Every rule confirm applies to a purchase's card and amounts, in
/// confirm's order; calculate runs the same, so that a till validating with
/// calculate gets the Key confirm would answer. On success, the purchase's
/// calculation.
pub fn check(
    rules: &BonusRules,
    card: &Card,
    amount: Amount,
    bonus_to_pay: Amount,
    today: Date,
) -> Result<Calculation, RuleError> {
    check_status(card, bonus_to_pay)?;
    if amount == Amount::ZERO {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            "Amount must be above 0",
        ));
    }
    if bonus_to_pay > amount {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            "BonusToPay exceeds Amount",
        ));
    }
    let calc = calculate(rules, card, amount, bonus_to_pay, today);
    if bonus_to_pay > calc.max_bonus_to_pay {
        return Err(RuleError::new(
            ErrorKey::InsufficientBonuses,
            format!(
                "{bonus_to_pay} bonuses requested, at most {} may be written off",
                calc.max_bonus_to_pay
            ),
        ));
    }
    // As for a manual bonus (issue 27, item 6): an accrual must not take
    // the card's total past what a balance states exactly, or the answer
    // would be clamped and disagree with the ledger. The write-off leaves
    // the card first, so only the net growth counts.
    let growth = calc.accrual.saturating_sub(bonus_to_pay);
    if Amount::total([card.bonus_total(), growth]).is_none() {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            format!(
                "the card would hold more than {} bonuses, the largest total a balance states exactly",
                Amount::TOTAL_MAX
            ),
        ));
    }
    Ok(calc)
}

/// A purchase's `Date` must lie in the window around `now`. A date counts
/// from its start (00:00 UTC), so a date is refused as soon as part of it
/// is older than the window; today is always accepted (a confirm without a
/// Date is dated today).
pub fn check_date(rules: &BonusRules, date: Date, now: OffsetDateTime) -> Result<(), RuleError> {
    let today = now.date();
    let start = date.midnight().assume_utc();
    if date > today && start > now + Duration::seconds(rules.date_max_ahead_secs) {
        return Err(RuleError::new(
            ErrorKey::InvalidParameter,
            format!(
                "Date {date} is in the future: at most {}s ahead of the server's clock ({today} UTC) is accepted",
                rules.date_max_ahead_secs
            ),
        ));
    }
    if date < today && start < now - Duration::seconds(rules.date_max_age_secs) {
        return Err(RuleError::new(
            ErrorKey::InvalidParameter,
            format!(
                "Date {date} is too old: purchases dated up to {}s back are accepted",
                rules.date_max_age_secs
            ),
        ));
    }
    Ok(())
}

/// How long after a confirm its `Date` can still pass [`check_date`]: the
/// latest date accepted then starts up to `date_max_ahead_secs` later, and
/// a date stays accepted `date_max_age_secs` from its start, and all of its
/// own day whatever the window (today is always accepted). A replay within
/// this time passes the Date check, so whatever refuses it (the PurchaseId
/// index) must live at least this long (issue 26).
pub fn date_replay_window(rules: &BonusRules) -> Duration {
    let ahead = Duration::seconds(rules.date_max_ahead_secs.max(0));
    let age = Duration::seconds(rules.date_max_age_secs.max(0));
    ahead.saturating_add(age.max(Duration::days(1)))
}

/// Applies a purchase to the card's ledger: writes off `bonus_to_pay`
/// (nearest-expiring first) and accrues to the lot of its dates, Inactive
/// for the activation delay, then Active until its expiry.
pub fn confirm(
    rules: &BonusRules,
    card: &mut Card,
    amount: Amount,
    bonus_to_pay: Amount,
    date: Date,
    today: Date,
) -> Result<PurchaseRecord, RuleError> {
    let calc = check(rules, card, amount, bonus_to_pay, today)?;
    let writeoffs = card.ledger.write_off(bonus_to_pay, today)?;
    Ok(accrue(
        rules,
        card,
        &calc,
        amount,
        bonus_to_pay,
        writeoffs,
        date,
        today,
    ))
}

/// The end of every confirm (plain, or from a hold): the accrual goes to
/// the lot of its dates, and the record of what was written off and
/// accrued is what replays, cancels and refunds work from.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accrue(
    rules: &BonusRules,
    card: &mut Card,
    calc: &Calculation,
    amount: Amount,
    bonus_to_pay: Amount,
    writeoffs: Vec<Allocation>,
    date: Date,
    today: Date,
) -> PurchaseRecord {
    let (active_from, expires) = accrual_dates(rules, date);
    card.ledger.accrue(
        calc.accrual,
        BonusType::Cash,
        active_from,
        Some(expires),
        LotSource::Purchase,
    );
    card.ledger.settle(today);
    PurchaseRecord {
        amount,
        bonus_paid: bonus_to_pay,
        accrual: calc.accrual,
        accrual_dates: (active_from, expires),
        writeoffs,
        refunded: Amount::ZERO,
        accrual_reversed: Amount::ZERO,
        bonus_returned: Amount::ZERO,
        cancelled: false,
    }
}

/// First usable day and last usable day of a purchase's accrual.
pub fn accrual_dates(rules: &BonusRules, date: Date) -> (Date, Date) {
    let active_from = date.saturating_add(Duration::days(rules.activation_delay_days));
    let expires = active_from.saturating_add(Duration::days(rules.expiry_days));
    (active_from, expires)
}

/// Reverses what is left of the purchase: gives back the written-off
/// bonuses not yet returned and takes back the accrual not yet reversed
/// (what was already spent of it comes out of the balance).
pub fn cancel(card: &mut Card, record: &mut PurchaseRecord, today: Date) -> Reversal {
    let reversal = reverse(
        card,
        record,
        record.accrual.saturating_sub(record.accrual_reversed),
        record.bonus_paid.saturating_sub(record.bonus_returned),
        today,
    );
    record.cancelled = true;
    reversal
}

/// A partial return of `amount` of the purchase: accrual and write-off are
/// reversed in proportion. Cumulative refunds never exceed the purchase;
/// the refund that completes it reverses exactly what is left.
pub fn refund(
    card: &mut Card,
    record: &mut PurchaseRecord,
    amount: Amount,
    today: Date,
) -> Result<Reversal, RuleError> {
    if record.cancelled {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            "the purchase was cancelled: nothing is left to refund",
        ));
    }
    let left = record.amount.saturating_sub(record.refunded);
    if amount == Amount::ZERO || amount > left {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            format!("a refund must be above 0 and at most what is left of the purchase ({left})"),
        ));
    }
    let refunded = record.refunded.checked_add(amount).unwrap_or(record.amount);
    let (accrual_target, bonus_target) = if refunded == record.amount {
        (record.accrual, record.bonus_paid)
    } else {
        (
            record.accrual.ratio(refunded, record.amount),
            record.bonus_paid.ratio(refunded, record.amount),
        )
    };
    let reversal = reverse(
        card,
        record,
        accrual_target.saturating_sub(record.accrual_reversed),
        bonus_target.saturating_sub(record.bonus_returned),
        today,
    );
    record.refunded = refunded;
    Ok(reversal)
}

fn reverse(
    card: &mut Card,
    record: &mut PurchaseRecord,
    accrual: Amount,
    bonus: Amount,
    today: Date,
) -> Reversal {
    // Expired lots out first: whether something compacted the card before
    // must not change what a reversal takes (issue 27), and a take-back
    // must never find a Burnt lot to take from.
    card.ledger.compact(today);
    let give_back = slice(&record.writeoffs, record.bonus_returned, bonus);
    card.ledger.restore(&give_back);
    let (from, expires) = record.accrual_dates;
    // An accrual whose lot has expired is Burnt, spent or not: nothing of
    // it is taken back from the live balance (startup refuses settings
    // under which a reversible purchase's accrual can expire, so only data
    // from other settings gets here).
    let live = if expires < today {
        Amount::ZERO
    } else {
        accrual
    };
    let removed = card.ledger.remove_from_lot(
        BonusType::Cash,
        from,
        Some(expires),
        LotSource::Purchase,
        live,
    );
    let spent = live.saturating_sub(removed);
    let covered = sum(card.ledger.take_back(spent, today).iter().map(|a| a.amount));
    let uncovered = spent.saturating_sub(covered);
    card.ledger.owe(uncovered);
    // What was given back pays what the card owed before.
    card.ledger.settle(today);
    record.accrual_reversed = record
        .accrual_reversed
        .checked_add(accrual)
        .unwrap_or(record.accrual);
    record.bonus_returned = record
        .bonus_returned
        .checked_add(bonus)
        .unwrap_or(record.bonus_paid);
    Reversal {
        accrual_reversed: live,
        bonus_returned: bonus,
        uncovered,
    }
}

fn sum(amounts: impl Iterator<Item = Amount>) -> Amount {
    Amount::total(amounts).unwrap_or(Amount::TOTAL_MAX)
}

/// The allocations covering `[skip, skip + take)` of the written-off
/// amount, in write-off order.
fn slice(allocations: &[Allocation], skip: Amount, take: Amount) -> Vec<Allocation> {
    let mut skip = skip;
    let mut take = take;
    let mut out = Vec::new();
    for a in allocations {
        if take == Amount::ZERO {
            break;
        }
        let available = a.amount.saturating_sub(skip);
        skip = skip.saturating_sub(a.amount);
        let part = available.min(take);
        if part > Amount::ZERO {
            out.push(Allocation {
                amount: part,
                ..a.clone()
            });
            take = take.saturating_sub(part);
        }
    }
    out
}

#[cfg(test)]
#[path = "purchase_tests.rs"]
mod tests;
