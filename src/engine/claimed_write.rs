//! The write loop of a request bound by its PurchaseId — confirm
//! (purchases.rs) and hold (holds.rs) — exactly once.
//!
//! First one write on the card as this instance last saw it (or as the
//! store's cache has it): the store checks, in the same step, that no
//! outcome is stored, that the PurchaseId's claim is the one expected and
//! that the card is still at that version; a lost compare-and-set hands
//! back the card as it is now, to decide again on. The rare paths (a card
//! not seen before whose cache missed, a refusal, another attempt's claim,
//! a replacement to finish) are decided on a fresh read of the card with
//! the purchase's record and the PurchaseId's claim.

use super::claims::new_owner;
use super::context::Ops;
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::support::{not_found_card, replay, MAX_ATTEMPTS};
use crate::domain::{Actor, Card, CardNumber, HistoryEntry, RuleError};
use crate::store::{CardRecordWrite, Cas, PurchaseCommit, PurchaseWrite, RecordRead};

/// The name of a purchase's record among its card's records (a
/// confirm's outcome, which also refuses a hold of the same PurchaseId).
pub(crate) fn purchase_key(purchase_id: &str) -> String {
    format!("purchase:{purchase_id}")
}

/// A write decided on one version of the card: the next card, its history
/// entry, the outcome to store, and what to count once it lands.
pub(crate) struct Step<O, E> {
    pub next: Card,
    pub entry: HistoryEntry,
    pub stored: Stored<O>,
    pub effect: E,
}

/// What every request bound by its PurchaseId carries.
pub(crate) struct Bound<'a> {
    pub number: &'a CardNumber,
    pub purchase_id: &'a str,
    pub actor: &'a Actor,
    /// Its stored outcome's name among the card's records.
    pub key: String,
    /// What a replay must match.
    pub fingerprint: String,
}

/// What the loop needs of a request bound by its PurchaseId.
pub(crate) trait ClaimedWrite: Sync {
    type Outcome: Kept;
    type Effect;
    /// Is its outcome kept under another name than the purchase's (a
    /// hold's), so read apart on the fresh read?
    const READS_APART: bool;

    /// The claim token its one write takes over (a confirm: its hold's).
    fn takes_over<'c>(&self, card: &'c Card) -> Option<&'c str>;
    /// What it does to `card` if the rules accept it, claiming under
    /// `owner`.
    fn prepare(
        &self,
        ops: &Ops,
        card: &Card,
        fingerprint: &str,
        owner: &str,
    ) -> Result<Step<Self::Outcome, Self::Effect>, RuleError>;
    /// Counts a write that landed; its answer.
    fn landed(step: Step<Self::Outcome, Self::Effect>) -> Self::Outcome;
    /// On the fresh read: its stored outcome (`key`), if any, given the
    /// purchase's record read with the card (`purchase:<id>`) and the
    /// outcome read apart (`None` unless `READS_APART`); or the refusal a
    /// confirmed purchase means for it.
    fn kept(
        &self,
        key: &str,
        purchase: Option<RecordRead>,
        apart: Option<Stored<Self::Outcome>>,
    ) -> Result<Option<Stored<Self::Outcome>>, EngineError>;
}

impl Ops {
    pub(crate) async fn claimed_write<W: ClaimedWrite>(
        &self,
        w: &W,
        b: &Bound<'_>,
    ) -> Result<W::Outcome, EngineError> {
        let (number, key) = (b.number, b.key.as_str());
        let mut base = self.write_base(number).await?;
        let mine = new_owner(self.instance, number.as_str());
        // The claim this request holds (a cluster claims before the card's
        // write, which may then lose its compare-and-set).
        let mut held: Option<String> = None;
        for _ in 0..MAX_ATTEMPTS {
            // Gone, mid-replacement or refused: decided on the fresh read.
            let Some(card) = base.take() else { break };
            if card.value.unfinished_replacement().is_some() {
                break;
            }
            let Ok(step) = w.prepare(self, &card.value, &b.fingerprint, &mine) else {
                break;
            };
            let outcome =
                CardRecordWrite::outcome(key.to_owned(), W::Outcome::encode(&step.stored));
            let write = PurchaseWrite {
                card: &step.next,
                expected_version: card.version,
                entry: &step.entry,
                outcome: &outcome,
                ttl_secs: self.settings.purchases.retention_secs,
                purchase_id: b.purchase_id,
                claim_expected: held.as_deref().or_else(|| w.takes_over(&card.value)),
                owner: &mine,
            };
            let since = self.continuity();
            match self.store.commit_purchase(&write).await? {
                PurchaseCommit::Applied => {
                    self.owned
                        .wrote(&step.next, card.version, &[(key, &outcome.value)], since);
                    return Ok(W::landed(step));
                }
                PurchaseCommit::Stored(stored) => {
                    let stored = W::Outcome::decode(key, &stored.value)?;
                    return replay(stored, &b.fingerprint, "PurchaseId");
                }
                // Another attempt's claim (or another card's): judged on
                // the read below.
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
        self.claimed_write_on_read(w, b, held).await
    }

    /// The write on a fresh read. `owner`: the claim this request holds
    /// already, if any.
    async fn claimed_write_on_read<W: ClaimedWrite>(
        &self,
        w: &W,
        b: &Bound<'_>,
        mut owner: Option<String>,
    ) -> Result<W::Outcome, EngineError> {
        let (number, key) = (b.number, b.key.as_str());
        let purchase = purchase_key(b.purchase_id);
        for _ in 0..MAX_ATTEMPTS {
            // Independent reads: sent together, they share a round trip.
            // The card and the purchase come in one read, so that the
            // purchase's presence goes with the card's version.
            let since = self.continuity();
            let (read, apart, claim) = futures_util::join!(
                self.store.get_card_with_record(number, &purchase),
                async {
                    if W::READS_APART {
                        self.stored::<W::Outcome>(number, key).await
                    } else {
                        Ok(None)
                    }
                },
                self.purchase_claim(b.purchase_id, owner.is_some()),
            );
            let (card, record) = read?;
            // The idempotency check comes first, before any lookup or rule
            // (docs/api.md §7): a replay answers as the first time did, and
            // a PurchaseId taken by another card is a conflict whatever
            // this card's state.
            if let Some(stored) = w.kept(key, record, apart?)? {
                return self
                    .replicated(number, replay(stored, &b.fingerprint, "PurchaseId"))
                    .await;
            }
            if let Some(claim) = claim? {
                self.judge_purchase_claim(&claim, number)?;
            }
            let card = card.ok_or_else(|| not_found_card(number))?;
            self.owned.saw(&card, since);
            if self.finish_replacement(&card.value, b.actor).await? {
                continue;
            }
            let mine = owner
                .clone()
                .unwrap_or_else(|| new_owner(self.instance, number.as_str()));
            let step = match w.prepare(self, &card.value, &b.fingerprint, &mine) {
                Ok(step) => step,
                // Refused on a read after this request claimed the id (its
                // first write lost a race): give the claim back.
                Err(refusal) if owner.is_some() => {
                    if self.release_purchase(b.purchase_id, &mine, &card).await? {
                        return Err(refusal.into());
                    }
                    continue;
                }
                // The card we read may already carry this very request,
                // applied by a twin after our outcome read (its write-off
                // then leaves too little for ours): answer what the twin
                // answered, not a refusal.
                Err(refusal) => {
                    return match self.stored::<W::Outcome>(number, key).await? {
                        Some(stored) => {
                            self.replicated(number, replay(stored, &b.fingerprint, "PurchaseId"))
                                .await
                        }
                        None => Err(refusal.into()),
                    }
                }
            };
            // Under the token the write keeps (a claim of another attempt
            // on this card is taken over by compare-and-swap).
            owner = Some(
                self.claim_purchase(b.purchase_id, number, Some(&mine))
                    .await?,
            );
            if self
                .commit(
                    &step.next,
                    card.version,
                    Some(&step.entry),
                    vec![CardRecordWrite::outcome(
                        key.to_owned(),
                        W::Outcome::encode(&step.stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                return Ok(W::landed(step));
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }
}
