//! Holds (issue 24, docs/api.md §7): `/api/purchase/hold` reserves a
//! purchase's write-off, its confirm writes off from the reservation,
//! `/api/purchase/release` frees it.
//!
//! Exactly once, as a confirm (purchases.rs): a hold is one conditional
//! write of its card (`Store::commit_purchase`: the PurchaseId's claim, a
//! create-only outcome under `hold:<PurchaseId>`, the card's compare-and-
//! set), and the hold itself lives in the card's record (`Card::holds`),
//! so every write of the card sees it: two holds can never reserve more
//! than is Active, and the confirm, the release and the expiry of one hold
//! are decided on the same record, one of them first.
//!
//! The PurchaseId: the hold claims it for its card (as a confirm does) and
//! keeps the claim's owner token in the hold; its confirm, on any instance,
//! takes the claim over by that token in its own one write. A released or
//! expired hold leaves the claim bound to the card: a confirm on that card
//! runs as a plain one, on another card it is an `IdempotencyConflict`.

use time::{Date, Duration, OffsetDateTime};

use super::claimed_write::{purchase_key, Bound, ClaimedWrite, Step};
use super::context::{Ops, PurchaseSettings};
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::support::{bonus_entry, not_found_card, MAX_ATTEMPTS};
use super::types::{ConfirmRequest, Held, HoldRequest, Released};
use crate::domain::history::note_debt;
use crate::domain::hold::{self, Hold};
use crate::domain::purchase::{self, BonusRules, PurchaseRecord};
use crate::domain::{
    Actor, Amount, BonusMovement, Card, CardNumber, ErrorKey, Operation, RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, RecordRead, Versioned};

pub(crate) fn hold_key(purchase_id: &str) -> String {
    format!("hold:{purchase_id}")
}

pub(crate) fn release_key(purchase_id: &str) -> String {
    format!("release:{purchase_id}")
}

/// The claim token a hold of `purchase_id` on `card` took its PurchaseId
/// under.
pub(crate) fn claim_of<'a>(card: &'a Card, purchase_id: &str) -> Option<&'a str> {
    card.holds
        .iter()
        .find(|h| h.purchase_id == purchase_id)
        .map(|h| h.owner.as_str())
}

/// Who keeps a PurchaseId's claim that a request took over and was then
/// refused (`Ops::release_purchase`): the claim must stay bound to the card
/// while the card keeps anything of that PurchaseId, else another card
/// could take it.
#[derive(Debug)]
pub(crate) enum ClaimKeeper<'a> {
    /// The card's open hold of it: back to the token the hold keeps, which
    /// its confirm expects.
    Hold(&'a str),
    /// A hold of it that is over (released, expired, ended by a block)
    /// left its answers on the card (`hold:<id>`, `release:<id>`): a
    /// release's retry finds the card through the claim, and a hold or
    /// confirm of the id on another card must stay an
    /// `IdempotencyConflict`. The refused request's token is the card's
    /// too, so the claim stays as it is.
    Card,
    /// Nothing of it on the card: free, as a refused request stores
    /// nothing (docs/api-decisions.md).
    Nobody,
}

impl Ops {
    /// Who keeps `purchase_id`'s claim after a refusal on `card` (read at
    /// the version the refusal was decided on, and fenced at it: a hold
    /// landing later takes the claim over by compare-and-swap first).
    pub(crate) async fn claim_keeper<'a>(
        &self,
        card: &'a Card,
        purchase_id: &str,
    ) -> Result<ClaimKeeper<'a>, EngineError> {
        if let Some(token) = claim_of(card, purchase_id) {
            return Ok(ClaimKeeper::Hold(token));
        }
        // A hold's answer is kept for the retention with the card; its
        // absence means no hold of this id ever landed on the card (or
        // its records and so its claim are past their life).
        let kept = self
            .store
            .get_card_record(&card.number, &hold_key(purchase_id))
            .await?;
        Ok(if kept.is_some() {
            ClaimKeeper::Card
        } else {
            ClaimKeeper::Nobody
        })
    }
}

/// What a confirm did to holds, counted once its write landed.
#[derive(Debug, Default)]
pub(crate) struct HoldEffect {
    consumed: Option<Amount>,
    released: bool,
    expired: usize,
}

impl HoldEffect {
    pub(crate) fn count(&self) {
        if let Some(held) = self.consumed {
            m::hold("confirmed");
            m::bonus_amount("hold_confirmed", held);
        }
        if self.released {
            m::hold("released");
        }
        for _ in 0..self.expired {
            m::hold("expired");
        }
    }
}

/// A confirm's ledger change on `next` (its expired holds, `expired`,
/// freed already): from its own open hold when it covers the request
/// (issue 24, item 2), else as a plain confirm, its hold (if any) freed
/// first: a confirm that does not match its hold ends it.
pub(crate) fn confirm_on(
    rules: &BonusRules,
    next: &mut Card,
    r: &ConfirmRequest,
    date: Date,
    now: OffsetDateTime,
    expired: Vec<Hold>,
) -> Result<(PurchaseRecord, HoldEffect), RuleError> {
    let today = now.date();
    let mut effect = HoldEffect {
        expired: expired.len(),
        ..HoldEffect::default()
    };
    let covering = next
        .open_hold(&r.purchase_id, now)
        .is_some_and(|h| h.covers(r.amount, r.bonus_to_pay));
    let record = if covering {
        let at = next
            .holds
            .iter()
            .position(|h| h.purchase_id == r.purchase_id)
            .unwrap_or_default();
        let h = next.holds.remove(at);
        effect.consumed = Some(h.bonus);
        hold::confirm_held(rules, next, h, r.bonus_to_pay, date, today)?
    } else {
        effect.released = next.release_hold(&r.purchase_id).is_some();
        purchase::confirm(rules, next, r.amount, r.bonus_to_pay, date, today)?
    };
    Ok((record, effect))
}

/// A hold as the write loop runs it (`claimed_write.rs`).
impl ClaimedWrite for HoldRequest {
    type Outcome = Held;
    /// The holds it found expired and freed (counted once it lands).
    type Effect = usize;
    /// Kept under `hold:<id>`, beside the purchase's record.
    const READS_APART: bool = true;

    /// A hold takes a free PurchaseId (or its own attempt's claim).
    fn takes_over<'c>(&self, _card: &'c Card) -> Option<&'c str> {
        None
    }

    /// The hold keeps `owner`, the token its claim is taken under.
    fn prepare(
        &self,
        ops: &Ops,
        card: &Card,
        fingerprint: &str,
        owner: &str,
    ) -> Result<Step<Held, usize>, RuleError> {
        ops.hold_on(self, card, fingerprint, owner)
    }

    fn landed(step: Step<Held, usize>) -> Held {
        m::hold("opened");
        m::bonus_amount("held", step.stored.outcome.bonus_to_pay);
        for _ in 0..step.effect {
            m::hold("expired");
        }
        step.stored.outcome
    }

    /// Its own outcome first (a replay answers as the first time did,
    /// even once the hold was confirmed); then a confirmed purchase
    /// refuses it.
    fn kept(
        &self,
        _key: &str,
        purchase: Option<RecordRead>,
        apart: Option<Stored<Held>>,
    ) -> Result<Option<Stored<Held>>, EngineError> {
        match (apart, purchase) {
            (Some(stored), _) => Ok(Some(stored)),
            (None, Some(_)) => Err(already_confirmed(&self.purchase_id)),
            (None, None) => Ok(None),
        }
    }
}

/// What a hold's replay must match: every field of its request.
fn fingerprint(r: &HoldRequest) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        r.number,
        r.amount,
        r.bonus_to_pay,
        r.date.map(|d| d.to_string()).unwrap_or_default(),
        r.hold_secs.map(|s| s.to_string()).unwrap_or_default()
    )
}

fn already_confirmed(purchase_id: &str) -> EngineError {
    RuleError::new(
        ErrorKey::IdempotencyConflict,
        format!(
            "the purchase {purchase_id:?} is confirmed: a hold comes before its confirm, and a confirmed purchase is reversed with /api/purchase/cancel or /api/purchase/refund"
        ),
    )
    .into()
}

/// The hold's life: the request's, else the default, at most the maximum.
pub fn hold_secs(settings: &PurchaseSettings, asked: Option<u64>) -> u64 {
    asked
        .unwrap_or(settings.hold_secs)
        .min(settings.hold_max_secs)
}

impl Ops {
    pub(crate) async fn hold(&self, r: &HoldRequest) -> Result<Held, EngineError> {
        // As confirm: one write on the card as this instance last saw it;
        // the store checks that no hold outcome is stored, that the
        // PurchaseId is free and that the card is still at that version.
        let bound = Bound {
            number: &r.number,
            purchase_id: &r.purchase_id,
            actor: &r.actor,
            key: hold_key(&r.purchase_id),
            fingerprint: fingerprint(r),
        };
        self.claimed_write(r, &bound).await
    }

    /// What a hold does to `card`: the next card, its entry, the outcome.
    /// `owner`: the claim token the hold keeps (this attempt's).
    fn hold_on(
        &self,
        r: &HoldRequest,
        card: &Card,
        fingerprint: &str,
        owner: &str,
    ) -> Result<Step<Held, usize>, RuleError> {
        let rules = &self.settings.purchases.rules;
        let now = self.clock.now();
        let today = now.date();
        let mut next = card.clone();
        let expired = next.free_expired_holds(now).len();
        next.ledger.compact(today);
        if let Some(date) = r.date {
            purchase::check_date(rules, date, now)?;
        }
        let secs = hold_secs(&self.settings.purchases, r.hold_secs);
        // Startup caps the maximum by the retention; still, an end past
        // the clock's range is refused, never an overflow.
        let until = i64::try_from(secs)
            .ok()
            .and_then(|s| now.checked_add(Duration::seconds(s)))
            .ok_or_else(|| {
                RuleError::new(
                    ErrorKey::InvalidParameter,
                    format!("a hold of {secs} seconds would end past the clock's range"),
                )
            })?;
        let taken = hold::hold(
            rules,
            &mut next,
            &r.purchase_id,
            owner,
            r.amount,
            r.bonus_to_pay,
            until,
            today,
        )?;
        let c = taken.calculation;
        let outcome = Held {
            number: r.number.clone(),
            purchase_id: r.purchase_id.clone(),
            amount: r.amount,
            bonus_to_pay: r.bonus_to_pay,
            accrual: c.accrual,
            max_bonus_to_pay: c.max_bonus_to_pay,
            discount_bp: c.discount_bp,
            held_until: until,
        };
        // The support desk's line. It moves nothing: held bonuses are
        // still the card's, reported Held; the confirm's entry debits the
        // write-off as any purchase's does, and a hold that expires or is
        // released leaves the card's movements summing up as before.
        let movement = BonusMovement {
            reference: r.purchase_id.clone(),
            credited: Amount::ZERO,
            debited: Amount::ZERO,
            money: Some(r.amount),
            comment: Some(format!(
                "{} held until {}",
                r.bonus_to_pay,
                views_time(until)
            )),
            debt: None,
        };
        let mut entry = bonus_entry(now, &next, &r.actor, Operation::Hold, movement);
        note_debt(&mut entry, card, &next);
        Ok(Step {
            next,
            entry,
            stored: Stored {
                fingerprint: fingerprint.to_owned(),
                outcome,
                purchase: None,
                reversals: Vec::new(),
            },
            effect: expired,
        })
    }

    /// Frees the open hold of `purchase_id` on `number` (the card its
    /// PurchaseId is bound to). Refused once the purchase is confirmed;
    /// a hold already released or expired answers success, nothing freed.
    /// A release that freed something stores its answer (`release:<id>`),
    /// so that its retry answers the same.
    pub(crate) async fn release(
        &self,
        actor: &Actor,
        number: &CardNumber,
        purchase_id: &str,
    ) -> Result<Released, EngineError> {
        let key = release_key(purchase_id);
        let purchase = purchase_key(purchase_id);
        for _ in 0..MAX_ATTEMPTS {
            // The confirmed purchase is read with the card: its absence
            // goes with the version the release writes on.
            let since = self.continuity();
            let (read, stored) = futures_util::join!(
                self.store.get_card_with_record(number, &purchase),
                self.stored::<Released>(number, &key),
            );
            let (card, confirmed) = read?;
            if confirmed.is_some() {
                return Err(RuleError::new(
                    ErrorKey::IdempotencyConflict,
                    format!(
                        "the purchase {purchase_id:?} is confirmed: its hold was used; reverse the purchase with /api/purchase/cancel"
                    ),
                )
                .into());
            }
            if let Some(stored) = stored? {
                return self.replicated(number, Ok(stored.outcome)).await;
            }
            let card: Versioned<Card> = card.ok_or_else(|| not_found_card(number))?;
            self.owned.saw(&card, since);
            let now = self.clock.now();
            let Some(hold) = card.value.open_hold(purchase_id, now) else {
                // Expired or released: nothing left to free.
                return Ok(Released {
                    number: number.clone(),
                    purchase_id: purchase_id.to_owned(),
                    released: Amount::ZERO,
                });
            };
            let freed = hold.bonus;
            let mut next = card.value.clone();
            let expired = next.free_expired_holds(now).len();
            next.release_hold(purchase_id);
            let outcome = Released {
                number: number.clone(),
                purchase_id: purchase_id.to_owned(),
                released: freed,
            };
            let movement = BonusMovement {
                reference: purchase_id.to_owned(),
                credited: Amount::ZERO,
                debited: Amount::ZERO,
                money: None,
                comment: Some(format!("{freed} released")),
                debt: None,
            };
            let entry = bonus_entry(now, &next, actor, Operation::Release, movement);
            let stored = Stored {
                fingerprint: String::new(),
                outcome: outcome.clone(),
                purchase: None,
                reversals: Vec::new(),
            };
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::outcome(
                        key.clone(),
                        Released::encode(&stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                m::hold("released");
                m::bonus_amount("hold_released", freed);
                for _ in 0..expired {
                    m::hold("expired");
                }
                return Ok(outcome);
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }
}

fn views_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
