//! `bindto` across two records that may live on different store nodes: the
//! contact → card index and the card itself. The protocol:
//!
//! 1. claim the contact's index entry for this card (claim-if-absent, or
//!    take it over from a card blocked for replacement, or from a claim whose
//!    owner never completed within the lease);
//! 2. write the binding on the card, conditional on the card's version;
//! 3. if step 2 loses a race, give the claim back and start again.
//!
//! Readers only believe a binding that both sides confirm (`current_card`),
//! so a half-done bind is never visible as one.

use super::error::EngineError;
use super::ops::{cannot_find_mobile, now, now_ms, Ops, MAX_ATTEMPTS};
use crate::domain::{
    card::Change, Actor, BindCheck, CardNumber, ContactCode, ErrorKey, MobileNumber, RuleError,
};
use crate::metrics as m;
use crate::store::{Cas, Index};

fn contact_taken() -> EngineError {
    RuleError::new(
        ErrorKey::ContactBindToAnotherCardNumber,
        "the contact already holds another card; a new card can be bound only when that card is blocked for replacement",
    )
    .into()
}

impl Ops {
    pub(crate) async fn bind(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: &MobileNumber,
    ) -> Result<(), EngineError> {
        let lease = self.settings.claim_lease_ms;
        for _ in 0..MAX_ATTEMPTS {
            let card = self.load_card(number).await?;
            let contact = self
                .contact_by_mobile(mobile)
                .await?
                .ok_or_else(|| cannot_find_mobile(mobile))?;
            let code = &contact.value.code;
            if card.value.check_bind(code)? == BindCheck::AlreadyBound {
                // A replacement whose last step was cut short is completed by
                // the retry that finds the card already bound.
                if let Some(old) = &card.value.replaces {
                    self.mark_replaced(old, number, actor).await?;
                }
                return Ok(());
            }

            let started = now_ms();
            let claim = self
                .store
                .index_get(Index::ContactCard, code.as_str())
                .await?;
            let (expected, replaces) = match claim {
                None => (None, None),
                Some(c) if c.owner == number.as_str() => (Some(c.owner), None),
                Some(c) => {
                    let holder = self
                        .store
                        .get_card(&CardNumber::from_trusted(c.owner.clone()))
                        .await?;
                    match holder {
                        Some(h) if h.value.contact.as_ref() == Some(code) => {
                            if !h.value.is_blocked_for_replacement() {
                                return Err(contact_taken());
                            }
                            (Some(c.owner), Some(h.value.number))
                        }
                        // The claimed card never got its binding written: a
                        // bind in progress (respect it) or one that died
                        // (take over once the lease has run out).
                        _ if started - c.since_ms > lease => (Some(c.owner), None),
                        _ => return Err(contact_taken()),
                    }
                }
            };

            if expected.as_deref() != Some(number.as_str()) {
                let claimed = self
                    .store
                    .index_claim(
                        Index::ContactCard,
                        code.as_str(),
                        expected.as_deref(),
                        number.as_str(),
                        started,
                    )
                    .await?;
                if claimed.is_err() {
                    continue;
                }
            }
            // Past half the lease another writer may soon judge our claim
            // stale; give it back rather than race that writer.
            if now_ms() - started > lease / 2 {
                self.undo_claim(code, number, expected.as_deref()).await?;
                return Err(EngineError::Contention(format!("binding card {number}")));
            }

            let Change::Changed { card: bound, entry } =
                card.value.bind(code, replaces.clone(), actor, now())
            else {
                unreachable!("binding a bindable card always changes it")
            };
            match self.store.update_card(&bound, card.version, &entry).await? {
                Cas::Applied => {
                    m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                    if let Some(old) = replaces {
                        self.mark_replaced(&old, number, actor).await?;
                    }
                    return Ok(());
                }
                Cas::Conflict => self.undo_claim(code, number, expected.as_deref()).await?,
            }
        }
        Err(EngineError::Contention(format!("binding card {number}")))
    }

    /// Gives a contact's claim back to whoever held it before us.
    async fn undo_claim(
        &self,
        code: &ContactCode,
        number: &CardNumber,
        previous: Option<&str>,
    ) -> Result<(), EngineError> {
        match previous {
            Some(prev) if prev != number.as_str() => {
                // If this fails, someone else already moved the claim on.
                let _ = self
                    .store
                    .index_claim(
                        Index::ContactCard,
                        code.as_str(),
                        Some(number.as_str()),
                        prev,
                        now_ms(),
                    )
                    .await?;
            }
            _ => {
                self.store
                    .index_release(Index::ContactCard, code.as_str(), number.as_str())
                    .await?
            }
        }
        Ok(())
    }

    /// Records on the old card of a replacement which card replaced it.
    async fn mark_replaced(
        &self,
        old: &CardNumber,
        by: &CardNumber,
        actor: &Actor,
    ) -> Result<(), EngineError> {
        let now = now();
        self.change_card(old, false, |card, _| Ok(card.mark_replaced(by, actor, now)))
            .await
    }
}
