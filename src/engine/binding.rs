//! `bindto` across two records that may live on different store nodes: the
//! contact → card index and the card itself. The protocol:
//!
//! 1. read the card (its version is what step 3 is conditional on);
//! 2. claim the contact's index entry for this attempt (claim-if-absent, or
//!    take it over from a card blocked for replacement, or from a claim whose
//!    owner never completed within the lease — by the store's clock);
//! 3. write the binding on the card, conditional on the card's version;
//! 4. if step 3 loses a race, give the claim back (unless the card turned
//!    out bound to this contact after all) and start again.
//!
//! Taking over a stale claim first *fences* the card it was made for: a
//! conditional write of that card, unchanged, at a new version. The slow
//! owner read its card (step 1) before it claimed, so its pending write
//! names an older version and fails, however late it arrives; if instead it
//! landed before the fence, the fence sees the card bound and backs off. So
//! only the attempt holding the claim ever writes a binding, a claim is
//! never given back while a binding relies on it, and no lease or clock
//! decides correctness. Readers only believe a binding that both sides
//! confirm (`current_card`), so a half-done bind is never visible as one.

use super::claims::{
    made_by, new_owner, new_owner_replacing, record_of, replaced_of, IN_PROGRESS_BACKOFF,
};
use super::context::Ops;
use super::error::EngineError;
use super::support::{cannot_find_mobile, MAX_ATTEMPTS};
use crate::domain::{
    card::Change, Actor, BindCheck, Card, CardNumber, ContactCode, ErrorKey, MobileNumber,
    RuleError,
};
use crate::metrics as m;
use crate::store::{Cas, Index, StoreError, Versioned};

fn contact_taken() -> EngineError {
    RuleError::new(
        ErrorKey::ContactBindToAnotherCardNumber,
        "the contact already holds another card; a new card can be bound only when that card is blocked for replacement",
    )
    .into()
}

/// What this attempt found in the contact's index entry.
struct Takeover {
    /// The owner string to replace (`None`: the entry is free).
    expected: Option<String>,
    /// The card blocked for replacement that the new card replaces.
    replaces: Option<CardNumber>,
    /// The card a stale claim was made for: fenced before the takeover.
    fence: Option<CardNumber>,
    /// Whether the replaced card is the live holder of the claim (bound and
    /// blocked for replacement) rather than inherited from a dead attempt.
    live_holder: bool,
}

/// What fencing a stale claim's card found.
enum Fence {
    /// The card is at a new version now (`None`: there is no such card).
    Done(Option<Box<Versioned<Card>>>),
    /// The slow owner's write landed first: the card is bound to the contact.
    Bound,
    /// The card changed meanwhile: look again.
    Raced,
}

impl Takeover {
    /// Whose claim to put back when this attempt gives up: the replaced
    /// card's (it stays the contact's card); a dead attempt's is not worth
    /// restoring.
    fn restorable(&self, instance: u32) -> Option<String> {
        if self.live_holder {
            return self.expected.clone();
        }
        // A dead attempt's claim is not restored (that would stamp it anew
        // and block the contact for another lease); the card it was
        // replacing is named instead, so the next bind still finds the
        // replacement to complete, at once.
        self.replaces
            .as_ref()
            .map(|old| new_owner(instance, old.as_str()))
    }
}

impl Ops {
    pub(crate) async fn bind(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: &MobileNumber,
    ) -> Result<(), EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut card = self.load_card(number).await?;
            let contact = self
                .contact_by_mobile(mobile)
                .await?
                .ok_or_else(|| cannot_find_mobile(mobile))?;
            let code = &contact.value.code;
            if card.value.check_bind(code)? == BindCheck::AlreadyBound {
                // A replacement whose last step was cut short is completed by
                // the retry that finds the card already bound.
                if let Some(old) = &card.value.replaces {
                    self.complete_replacement(old, number, actor).await?;
                }
                // Possibly bound by this request's first attempt, answered
                // 503 for want of replicas (`replicated.rs`).
                return self.replicated(number, Ok(())).await;
            }

            let Some(takeover) = self.inspect_claim(code, number).await? else {
                // Another attempt for this very card and contact holds the
                // claim and has not finished: look again shortly.
                tokio::time::sleep(IN_PROGRESS_BACKOFF).await;
                continue;
            };
            if let Some(holder) = &takeover.fence {
                let ours = (holder == number).then_some(&card);
                match self.fence_card(holder, code, ours).await? {
                    // Fencing our own card moved it on: our read is that
                    // new version (still read before our claim).
                    Fence::Done(Some(fenced)) if holder == number => card = *fenced,
                    Fence::Done(_) => {}
                    Fence::Bound | Fence::Raced => continue,
                }
            }
            let owner = new_owner_replacing(
                self.instance,
                number.as_str(),
                takeover.replaces.as_ref().map(CardNumber::as_str),
            );
            let claimed = self
                .store
                .index_claim(
                    Index::ContactCard,
                    code.as_str(),
                    takeover.expected.as_deref(),
                    &owner,
                )
                .await?;
            if claimed.is_err() {
                continue;
            }

            let Change::Changed { card: bound, entry } =
                card.value
                    .bind(code, takeover.replaces.clone(), actor, self.clock.now())
            else {
                unreachable!("binding a bindable card always changes it")
            };
            let written = match self.store.update_card(&bound, card.version, &entry).await {
                Ok(cas) => cas,
                // Nothing was written: give the claim back now rather than
                // leave the contact blocked for a lease. (With an unknown
                // outcome the binding may exist: the claim must stay.)
                Err(e @ StoreError::Unavailable(_)) => {
                    let _ = self
                        .undo_claim(code, &owner, takeover.restorable(self.instance).as_deref())
                        .await;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            match written {
                Cas::Applied => {
                    m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                    if let Some(old) = takeover.replaces {
                        self.complete_replacement(&old, number, actor).await?;
                    }
                    return Ok(());
                }
                Cas::Conflict => {
                    let now_bound =
                        self.load_card(number).await?.value.contact.as_ref() == Some(code);
                    if !now_bound {
                        self.undo_claim(
                            code,
                            &owner,
                            takeover.restorable(self.instance).as_deref(),
                        )
                        .await?;
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("binding card {number}")))
    }

    /// Decides whose claim on the contact this attempt may replace. `None`:
    /// another attempt for the same card holds it and is still in progress.
    async fn inspect_claim(
        &self,
        code: &ContactCode,
        number: &CardNumber,
    ) -> Result<Option<Takeover>, EngineError> {
        let lease = self.settings.claim_lease_ms;
        let Some(claim) = self
            .store
            .index_get(Index::ContactCard, code.as_str())
            .await?
        else {
            return Ok(Some(Takeover {
                expected: None,
                replaces: None,
                fence: None,
                live_holder: false,
            }));
        };
        let holder_number = CardNumber::from_trusted(record_of(&claim.owner).to_owned());
        // Another attempt for our own card made by this instance has ended
        // (the shard runs one command per card at a time): it is as good as
        // stale.
        let ended = holder_number == *number && made_by(&claim.owner, self.instance);
        let stale = claim.age_ms > lease || ended;
        let inherited = if stale {
            self.pending_replacement(code, &claim.owner).await?
        } else {
            None
        };
        if holder_number == *number {
            // Our card, but not our attempt: our card is unbound (the caller
            // checked), so that attempt is unfinished or dead.
            return Ok(stale.then_some(Takeover {
                expected: Some(claim.owner),
                replaces: inherited,
                fence: Some(holder_number),
                live_holder: false,
            }));
        }
        let holder = self.store.get_card(&holder_number).await?;
        match holder {
            Some(h) if h.value.contact.as_ref() == Some(code) => {
                if h.value.is_blocked_for_replacement() {
                    Ok(Some(Takeover {
                        expected: Some(claim.owner),
                        replaces: Some(h.value.number),
                        fence: None,
                        live_holder: true,
                    }))
                } else {
                    Err(contact_taken())
                }
            }
            // The claimed card never got its binding written: a bind in
            // progress (respect it) or one that died (take over once the
            // lease has run out).
            _ if stale => Ok(Some(Takeover {
                expected: Some(claim.owner),
                replaces: inherited,
                fence: Some(holder_number),
                live_holder: false,
            })),
            _ => Err(contact_taken()),
        }
    }

    /// Fences the card a stale claim on `code` was made for (see the module
    /// comment): rewrites it unchanged at a new version, unless the slow
    /// owner's binding landed first.
    /// `ours`: the holder is the card being bound, as this attempt read it
    /// (and checked it bindable): it is fenced at that very version, so that
    /// a concurrent change since (another binding, a block) makes the fence
    /// fail rather than be carried forward unchecked.
    async fn fence_card(
        &self,
        holder: &CardNumber,
        code: &ContactCode,
        ours: Option<&Versioned<Card>>,
    ) -> Result<Fence, EngineError> {
        let card = match ours {
            Some(card) => card.clone(),
            None => match self.store.get_card(holder).await? {
                Some(card) => card,
                None => return Ok(Fence::Done(None)),
            },
        };
        if card.value.contact.as_ref() == Some(code) {
            return Ok(Fence::Bound);
        }
        let written = self
            .store
            .update_card_with(
                &card.value,
                card.version,
                None,
                &[],
                self.settings.purchases.retention_secs,
            )
            .await?;
        Ok(match written {
            Cas::Applied => Fence::Done(Some(Box::new(Versioned {
                value: card.value,
                version: card.version + 1,
            }))),
            Cas::Conflict => Fence::Raced,
        })
    }

    /// The replacement a dead attempt (its stale claim `owner`) was making,
    /// if that old card is still waiting for it: bound to this contact,
    /// blocked for replacement, not yet replaced.
    async fn pending_replacement(
        &self,
        code: &ContactCode,
        owner: &str,
    ) -> Result<Option<CardNumber>, EngineError> {
        let Some(old) = replaced_of(owner) else {
            return Ok(None);
        };
        let old = CardNumber::from_trusted(old.to_owned());
        let waiting = self.store.get_card(&old).await?.is_some_and(|c| {
            c.value.contact.as_ref() == Some(code)
                && c.value.is_blocked_for_replacement()
                && c.value.replaced_by.is_none()
        });
        Ok(waiting.then_some(old))
    }

    /// Gives up this attempt's claim: back to `previous`, or released.
    async fn undo_claim(
        &self,
        code: &ContactCode,
        owner: &str,
        previous: Option<&str>,
    ) -> Result<(), EngineError> {
        match previous {
            Some(prev) => {
                // Refused when someone else already moved the claim on: fine.
                let _ = self
                    .store
                    .index_claim(Index::ContactCard, code.as_str(), Some(owner), prev)
                    .await?;
            }
            None => {
                self.store
                    .index_release(Index::ContactCard, code.as_str(), owner)
                    .await?
            }
        }
        Ok(())
    }
}
