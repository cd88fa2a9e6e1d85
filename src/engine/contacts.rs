//! The contacts-and-binding family: a contact's create-or-update and
//! `bindto`. Each keeps a cross-record index unique — a mobile number
//! belongs to at most one contact, a contact holds at most one usable card
//! — with the same protocol: claim the index entry for this attempt, then
//! write the record conditionally on the version read *before* claiming;
//! give the claim back if that write loses a race. Taking over a stale
//! claim first *fences* the record it was made for (a conditional write
//! that raises its version), so the slow owner's pending write can no
//! longer land, however late it arrives.
//!
//! ## Contacts
//!
//! A mobile number's index entry is claimed before the contact record is
//! written, and given back if that write loses a race — unless the contact
//! turned out to carry the number after all. Fencing raises the contact's
//! version even if the contact was never created.
//!
//! ## Binding
//!
//! `bindto` spans two records that may live on different store nodes: the
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
//! Fencing a stale claim's card is a conditional write of that card,
//! unchanged, at a new version. The slow owner read its card (step 1)
//! before it claimed, so its pending write names an older version and
//! fails; if instead it landed before the fence, the fence sees the card
//! bound and backs off. So only the attempt holding the claim ever writes a
//! binding, a claim is never given back while a binding relies on it, and
//! no lease or clock decides correctness. Readers only believe a binding
//! that both sides confirm (`current_card`), so a half-done bind is never
//! visible as one.

use super::claims::{
    made_by, new_owner, new_owner_replacing, record_of, replaced_of, IN_PROGRESS_BACKOFF,
};
use super::context::Ops;
use super::error::EngineError;
use super::support::{cannot_find_mobile, MAX_ATTEMPTS};
use super::types::ContactView;
use crate::domain::{
    card::Change, Actor, BindCheck, Card, CardNumber, Contact, ContactCode, ContactPatch, ErrorKey,
    MobileNumber, RuleError,
};
use crate::metrics as m;
use crate::store::{Cas, Index, StoreError, Versioned};

// ---------------------------------------------------------------------------
// Contacts: create-or-update, and the mobile number's index entry.
// ---------------------------------------------------------------------------

fn number_taken() -> EngineError {
    RuleError::new(
        ErrorKey::MobileNumberBelongsToAnotherContact,
        "the mobile number belongs to another contact",
    )
    .into()
}

/// The outcome of looking at a mobile number's index entry.
enum MobileClaim {
    /// This attempt now holds the entry under `owner`; taking it over from
    /// an ended attempt of the same contact fenced the contact, whose
    /// record is at `fenced_to` now.
    Taken {
        owner: String,
        fenced_to: Option<u64>,
    },
    /// Another attempt for the same contact holds it, unfinished: retry.
    InProgress,
    /// The entry changed under us: retry.
    Raced,
}

impl Ops {
    pub(crate) async fn upsert_contact(
        &self,
        code: ContactCode,
        patch: ContactPatch,
    ) -> Result<ContactView, EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let slot = self.store.get_contact_slot(&code).await?;
            let existing = slot.value.clone();
            let mut expected = slot.version;
            let mut contact = existing
                .clone()
                .unwrap_or_else(|| Contact::new(code.clone()));
            if existing.is_none() && patch.mobile.is_none() {
                return Err(RuleError::new(
                    ErrorKey::RequiredParameterNotSpecified,
                    "MobileNumber (required to create a contact)",
                )
                .into());
            }
            let old_mobile = contact.mobile.clone();
            let old_claim = contact.mobile_claim.clone();
            contact.apply(patch.clone());
            let new_mobile = contact
                .mobile
                .clone()
                .filter(|m| Some(m) != old_mobile.as_ref());

            let mut owner = None;
            if let Some(mobile) = &new_mobile {
                match self.claim_mobile(mobile, &code, expected).await? {
                    MobileClaim::Taken {
                        owner: o,
                        fenced_to,
                    } => {
                        contact.mobile_claim = Some(o.clone());
                        owner = Some(o);
                        expected = fenced_to.unwrap_or(expected);
                    }
                    MobileClaim::InProgress => {
                        tokio::time::sleep(IN_PROGRESS_BACKOFF).await;
                        continue;
                    }
                    MobileClaim::Raced => continue,
                }
            }

            let written = match self.store.put_contact(&contact, expected).await {
                Ok(cas) => cas,
                // Nothing was written: give the number back now. (With an
                // unknown outcome the contact may carry it: keep the claim.)
                Err(e @ StoreError::Unavailable(_)) => {
                    if let (Some(mobile), Some(o)) = (&new_mobile, &owner) {
                        let _ = self
                            .store
                            .index_release(Index::Mobile, mobile.as_str(), o)
                            .await;
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            match written {
                Cas::Applied => {
                    if let (Some(old), Some(_)) = (&old_mobile, &new_mobile) {
                        self.release_mobile(old, &code, old_claim.as_deref())
                            .await?;
                    }
                    let card = self.current_card(&code).await?.map(|c| c.value);
                    return Ok(ContactView {
                        contact,
                        card,
                        created: existing.is_none(),
                    });
                }
                Cas::Conflict => {
                    if let (Some(mobile), Some(owner)) = (&new_mobile, &owner) {
                        let now_ours = self
                            .store
                            .get_contact(&code)
                            .await?
                            .is_some_and(|c| c.value.mobile.as_ref() == Some(mobile));
                        if !now_ours {
                            self.store
                                .index_release(Index::Mobile, mobile.as_str(), owner)
                                .await?;
                        }
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("contact {code}")))
    }

    /// Claims `mobile` for `code`, whose record this attempt read at
    /// `version`.
    async fn claim_mobile(
        &self,
        mobile: &MobileNumber,
        code: &ContactCode,
        version: u64,
    ) -> Result<MobileClaim, EngineError> {
        let owner = new_owner(self.instance, code.as_str());
        let current = self.store.index_get(Index::Mobile, mobile.as_str()).await?;
        let mut fenced_to = None;
        let expected = match current {
            None => None,
            Some(holder) => {
                let stale = holder.age_ms > self.settings.claim_lease_ms;
                let holder_code = ContactCode::from_trusted(record_of(&holder.owner).to_owned());
                if holder_code == *code {
                    // Our contact, another attempt: it does not carry the
                    // number yet (or we would not be claiming it). Made by
                    // this instance, that attempt has ended (the shard runs
                    // one command per contact at a time): take it over.
                    if !stale && !made_by(&holder.owner, self.instance) {
                        return Ok(MobileClaim::InProgress);
                    }
                    // Our own record is the one to fence; we read it at
                    // `version`, before claiming, so our write stays valid.
                    if self.store.fence_contact(code, version).await? == Cas::Conflict {
                        return Ok(MobileClaim::Raced);
                    }
                    fenced_to = Some(version + 1);
                } else {
                    let slot = self.store.get_contact_slot(&holder_code).await?;
                    let theirs = slot
                        .value
                        .as_ref()
                        .is_some_and(|o| o.mobile.as_ref() == Some(mobile));
                    if theirs || !stale {
                        return Err(number_taken());
                    }
                    // The stale claim's contact never got the number: fence
                    // it, so that its slow writer cannot give it the number
                    // after we have.
                    if self.store.fence_contact(&holder_code, slot.version).await? == Cas::Conflict
                    {
                        return Ok(MobileClaim::Raced);
                    }
                }
                Some(holder.owner)
            }
        };
        let claimed = self
            .store
            .index_claim(Index::Mobile, mobile.as_str(), expected.as_deref(), &owner)
            .await?;
        Ok(match claimed {
            Ok(()) => MobileClaim::Taken { owner, fenced_to },
            Err(_) => MobileClaim::Raced,
        })
    }

    /// Frees a number the contact no longer carries: exactly the claim the
    /// contact held it under, so that a newer claim of the same contact on
    /// the same number (it may have changed back meanwhile) stays.
    async fn release_mobile(
        &self,
        mobile: &MobileNumber,
        code: &ContactCode,
        held_as: Option<&str>,
    ) -> Result<(), EngineError> {
        match held_as {
            Some(owner) => {
                self.store
                    .index_release(Index::Mobile, mobile.as_str(), owner)
                    .await?
            }
            // A contact written before claims were recorded on contacts.
            None => {
                if let Some(claim) = self.store.index_get(Index::Mobile, mobile.as_str()).await? {
                    if record_of(&claim.owner) == code.as_str() {
                        self.store
                            .index_release(Index::Mobile, mobile.as_str(), &claim.owner)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Binding: a card to a contact, and the contact's index entry.
// ---------------------------------------------------------------------------

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
