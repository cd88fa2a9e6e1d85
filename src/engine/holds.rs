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

use super::claims::new_owner;
use super::context::{Ops, PurchaseSettings};
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::purchases::purchase_key;
use super::support::{bonus_entry, not_found_card, replay, MAX_ATTEMPTS};
use super::types::{ConfirmRequest, Held, HoldRequest, Released};
use crate::domain::history::note_debt;
use crate::domain::hold::{self, Hold};
use crate::domain::purchase::{self, BonusRules, PurchaseRecord};
use crate::domain::{
    Actor, Amount, BonusMovement, Card, CardNumber, ErrorKey, HistoryEntry, Operation, RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, PurchaseCommit, PurchaseWrite, Versioned};

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

/// A hold's write, decided on one version of the card.
struct Prepared {
    next: Card,
    entry: HistoryEntry,
    stored: Stored<Held>,
    expired: usize,
}

impl Prepared {
    fn landed(self) -> Held {
        m::hold("opened");
        m::bonus_amount("held", self.stored.outcome.bonus_to_pay);
        for _ in 0..self.expired {
            m::hold("expired");
        }
        self.stored.outcome
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
        let key = hold_key(&r.purchase_id);
        let fingerprint = fingerprint(r);
        // As confirm: one write on the card as this instance last saw it;
        // the store checks that no hold outcome is stored, that the
        // PurchaseId is free and that the card is still at that version.
        let mut base = self.write_base(&r.number).await?;
        let mine = new_owner(self.instance, r.number.as_str());
        let mut held: Option<String> = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(card) = base.take() else { break };
            if card.value.unfinished_replacement().is_some() {
                break;
            }
            let Ok(p) = self.hold_on(r, &card.value, &fingerprint, &mine) else {
                break;
            };
            let outcome = CardRecordWrite::outcome(key.clone(), Held::encode(&p.stored));
            let write = PurchaseWrite {
                card: &p.next,
                expected_version: card.version,
                entry: &p.entry,
                outcome: &outcome,
                ttl_secs: self.settings.purchases.retention_secs,
                purchase_id: &r.purchase_id,
                claim_expected: held.as_deref(),
                owner: &mine,
            };
            let since = self.continuity();
            match self.store.commit_purchase(&write).await? {
                PurchaseCommit::Applied => {
                    self.owned
                        .wrote(&p.next, card.version, &[(&key, &outcome.value)], since);
                    return Ok(p.landed());
                }
                PurchaseCommit::Stored(stored) => {
                    let stored = Held::decode(&key, &stored.value)?;
                    return replay(stored, &fingerprint, "PurchaseId");
                }
                // The PurchaseId is claimed (by a confirm, or another
                // attempt): judged on the read below.
                PurchaseCommit::Claimed(_) => break,
                PurchaseCommit::Conflict {
                    current,
                    claim_held,
                } => {
                    if claim_held {
                        held = Some(mine.clone());
                    }
                    if let Some(current) = &current {
                        self.owned.saw(current, since);
                    }
                    base = current.map(|c| *c);
                }
            }
        }
        self.hold_on_read(r, &key, &fingerprint, held).await
    }

    /// What a hold does to `card`: the next card, its entry, the outcome.
    /// `owner`: the claim token the hold keeps (this attempt's).
    fn hold_on(
        &self,
        r: &HoldRequest,
        card: &Card,
        fingerprint: &str,
        owner: &str,
    ) -> Result<Prepared, RuleError> {
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
        Ok(Prepared {
            next,
            entry,
            stored: Stored {
                fingerprint: fingerprint.to_owned(),
                outcome,
                purchase: None,
                reversals: Vec::new(),
            },
            expired,
        })
    }

    /// A hold on a fresh read of the card with its confirmed purchase (if
    /// any: one read, so the absence goes with the card's version), the
    /// hold's stored outcome and the PurchaseId's claim.
    async fn hold_on_read(
        &self,
        r: &HoldRequest,
        key: &str,
        fingerprint: &str,
        mut owner: Option<String>,
    ) -> Result<Held, EngineError> {
        let purchase = purchase_key(&r.purchase_id);
        for _ in 0..MAX_ATTEMPTS {
            let since = self.continuity();
            let (read, stored, claim) = futures_util::join!(
                self.store.get_card_with_record(&r.number, &purchase),
                self.stored::<Held>(&r.number, key),
                self.purchase_claim(&r.purchase_id, owner.is_some()),
            );
            let (card, confirmed) = read?;
            if let Some(stored) = stored? {
                return self
                    .replicated(&r.number, replay(stored, fingerprint, "PurchaseId"))
                    .await;
            }
            if confirmed.is_some() {
                return Err(already_confirmed(&r.purchase_id));
            }
            if let Some(claim) = claim? {
                self.judge_purchase_claim(&claim, &r.number)?;
            }
            let card = card.ok_or_else(|| not_found_card(&r.number))?;
            self.owned.saw(&card, since);
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            let mine = owner
                .clone()
                .unwrap_or_else(|| new_owner(self.instance, r.number.as_str()));
            let p = match self.hold_on(r, &card.value, fingerprint, &mine) {
                Ok(p) => p,
                Err(refusal) if owner.is_some() => {
                    let held = owner.as_deref().unwrap_or_default();
                    if self.release_purchase(&r.purchase_id, held, &card).await? {
                        return Err(refusal.into());
                    }
                    continue;
                }
                // A twin of this request may have landed after our reads.
                Err(refusal) => {
                    return match self.stored::<Held>(&r.number, key).await? {
                        Some(stored) => {
                            self.replicated(&r.number, replay(stored, fingerprint, "PurchaseId"))
                                .await
                        }
                        None => Err(refusal.into()),
                    }
                }
            };
            // Under the token the hold keeps (a claim of another attempt
            // on this card is taken over by compare-and-swap).
            owner = Some(
                self.claim_purchase(&r.purchase_id, &r.number, Some(&mine))
                    .await?,
            );
            if self
                .commit(
                    &p.next,
                    card.version,
                    Some(&p.entry),
                    vec![CardRecordWrite::outcome(
                        key.to_owned(),
                        Held::encode(&p.stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                return Ok(p.landed());
            }
        }
        Err(EngineError::Contention(format!("card {}", r.number)))
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
