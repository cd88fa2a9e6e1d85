//! Contact create-or-update. A mobile number belongs to at most one contact:
//! the number's index entry is claimed (by this attempt) before the contact
//! record is written, and given back if that write loses a race — unless
//! the contact turned out to carry the number after all.
//!
//! As with bindings (`binding.rs`), taking over a stale claim first fences
//! the contact record it was made for (its version is raised, even if the
//! contact was never created), so the slow owner's write — conditional on
//! the version it read before claiming — can no longer land.

use super::claims::{made_by, new_owner, record_of, IN_PROGRESS_BACKOFF};
use super::context::Ops;
use super::error::EngineError;
use super::support::MAX_ATTEMPTS;
use super::types::ContactView;
use crate::domain::{Contact, ContactCode, ContactPatch, ErrorKey, MobileNumber, RuleError};
use crate::store::{Cas, Index, StoreError};

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
