//! The manual bonus family: an administrator's accrual, exactly once per
//! OperationId (its outcome is stored in the card's own key space, in the
//! same atomic write as the ledger change).

use time::Date;

use super::context::Ops;
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::support::{bonus_entry, replay, MAX_ATTEMPTS};
use super::types::{Accrued, ManualBonusRequest};
use crate::domain::history::note_debt;
use crate::domain::ledger::LotSource;
use crate::domain::purchase;
use crate::domain::{
    Amount, BonusMovement, Card, CardNumber, ErrorKey, HistoryEntry, Operation, RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas};

impl Ops {
    pub(crate) async fn manual_bonus(
        &self,
        r: &ManualBonusRequest,
    ) -> Result<Accrued, EngineError> {
        let key = format!("bonus:{}", r.operation_id);
        let today = self.clock.today();
        let active_from = r.active_from.unwrap_or(today);
        let expire_date = r.expire_date.or_else(|| {
            Some(active_from.saturating_add(time::Duration::days(
                self.settings.purchases.rules.expiry_days,
            )))
        });
        // Dates entirely in the past are refused below, after the
        // idempotency check (a replay answers whatever today is).
        if r.expire_date.is_some_and(|e| e >= today) && expire_date.is_some_and(|e| e < active_from)
        {
            return Err(RuleError::new(
                ErrorKey::InvalidParameter,
                "ExpireDate is before ActiveFrom",
            )
            .into());
        }
        let fingerprint = manual_fingerprint(&r.number, r);
        // First on the write base: one conditional write whose create-only
        // outcome also refuses a replay. A card that replaced another (its
        // predecessors may hold this operation), a refusal or a lost race
        // are decided on the fresh reads below.
        if let Some(card) = self
            .write_base(&r.number)
            .await?
            .filter(|c| c.value.replaces.is_none() && c.value.unfinished_replacement().is_none())
        {
            if let Ok((next, entry, stored)) = self.accrual_on(
                r,
                &card.value,
                active_from,
                expire_date,
                today,
                &fingerprint,
            ) {
                if self
                    .commit(
                        &next,
                        card.version,
                        Some(&entry),
                        vec![CardRecordWrite::outcome(
                            key.clone(),
                            Accrued::encode(&stored),
                        )],
                    )
                    .await?
                    == Cas::Applied
                {
                    m::bonus_amount("manual_accrual", r.amount);
                    return Ok(stored.outcome);
                }
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let (card, stored) = self.read_with::<Accrued>(&r.number, &key).await?;
            if let Some((stored, _)) = stored {
                return self
                    .replicated(&r.number, replay(stored, &fingerprint, "OperationId"))
                    .await;
            }
            // Applied on a card this one replaced, and retried with the new
            // card's number: the same operation. An OperationId's scope is
            // the card (docs/api-decisions.md), and a replacement card is
            // the same customer's card: the request is compared as if sent
            // to the card it was applied on.
            if let Some(stored) = self
                .predecessors_outcome::<Accrued>(&card.value, &key)
                .await?
            {
                let as_sent_there = manual_fingerprint(&stored.outcome.number, r);
                let there = stored.outcome.number.clone();
                return self
                    .replicated(&there, replay(stored, &as_sent_there, "OperationId"))
                    .await;
            }
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            let (next, entry, stored) = self.accrual_on(
                r,
                &card.value,
                active_from,
                expire_date,
                today,
                &fingerprint,
            )?;
            let outcome = stored.outcome.clone();
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::outcome(
                        key.clone(),
                        Accrued::encode(&stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                m::bonus_amount("manual_accrual", r.amount);
                return Ok(outcome);
            }
        }
        Err(EngineError::Contention(format!("card {}", r.number)))
    }

    /// A manual accrual applied to `card`: the next card, its history entry
    /// and the outcome to store; or the refusal.
    fn accrual_on(
        &self,
        r: &ManualBonusRequest,
        card: &Card,
        active_from: Date,
        expire_date: Option<Date>,
        today: Date,
        fingerprint: &str,
    ) -> Result<(Card, HistoryEntry, Stored<Accrued>), EngineError> {
        refuse_expired_bonus(r, expire_date, today)?;
        purchase::check_status(card, Amount::ZERO)?;
        if Amount::total([card.bonus_total(), r.amount]).is_none() {
            return Err(RuleError::new(
                ErrorKey::InvalidAmount,
                format!(
                    "the card would hold more than {} bonuses, the largest total a balance states exactly",
                    Amount::TOTAL_MAX
                ),
            )
            .into());
        }
        let mut next = card.clone();
        next.free_expired_holds(self.clock.now());
        next.ledger.compact(today);
        next.ledger.accrue(
            r.amount,
            r.bonus_type,
            active_from,
            expire_date,
            LotSource::Bonus,
        );
        next.ledger.settle(today);
        let outcome = Accrued {
            number: r.number.clone(),
            operation_id: r.operation_id.clone(),
            amount: r.amount,
            bonus_type: r.bonus_type,
            active_from,
            expire_date,
        };
        let movement = BonusMovement {
            reference: r.operation_id.clone(),
            credited: r.amount,
            debited: Amount::ZERO,
            money: None,
            comment: r.comment.clone(),
            debt: None,
        };
        let mut entry = bonus_entry(
            self.clock.now(),
            &next,
            &r.actor,
            Operation::Bonus,
            movement,
        );
        note_debt(&mut entry, card, &next);
        let stored = Stored {
            fingerprint: fingerprint.to_owned(),
            outcome: outcome.clone(),
            purchase: None,
            reversals: Vec::new(),
        };
        Ok((next, entry, stored))
    }
}

/// A manual accrual whose bonuses would be Burnt the day they are credited
/// is a mistake (issue 27): it would only inflate the Burnt total.
fn refuse_expired_bonus(
    r: &ManualBonusRequest,
    expire_date: Option<Date>,
    today: Date,
) -> Result<(), RuleError> {
    let Some(expires) = expire_date.filter(|e| *e < today) else {
        return Ok(());
    };
    let message = match (r.expire_date, r.active_from) {
        (Some(_), _) | (None, None) => format!(
            "ExpireDate {expires} is in the past: a manual accrual must be usable at least through today ({today} UTC)"
        ),
        (None, Some(from)) => format!(
            "ActiveFrom {from} is too far back: its bonuses would expire on {expires} (bonus.expiry_days later), before today ({today} UTC)"
        ),
    };
    Err(RuleError::new(ErrorKey::InvalidParameter, message))
}

/// What a manual accrual's replay must match: the request's fields, with
/// the number of the card it is compared on.
fn manual_fingerprint(number: &CardNumber, r: &ManualBonusRequest) -> String {
    format!(
        "{}|{}|{}|{:?}|{:?}|{:?}",
        number,
        r.amount,
        r.bonus_type.code(),
        r.active_from,
        r.expire_date,
        r.comment
    )
}
