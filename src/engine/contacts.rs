//! Contact create-or-update. A mobile number belongs to at most one contact:
//! the number's index entry is claimed (by this attempt) before the contact
//! record is written, and given back if that write loses a race — unless
//! the contact turned out to carry the number after all.

use super::claims::{made_by, new_owner, record_of, IN_PROGRESS_BACKOFF};
use super::commands::ContactView;
use super::error::EngineError;
use super::ops::{now_ms, Ops, MAX_ATTEMPTS};
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
    /// This attempt now holds the entry under `owner`.
    Taken { owner: String },
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
            let existing = self.store.get_contact(&code).await?;
            let (mut contact, expected) = match &existing {
                Some(v) => (v.value.clone(), Some(v.version)),
                None => (Contact::new(code.clone()), None),
            };
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
            let started = now_ms();
            if let Some(mobile) = &new_mobile {
                match self.claim_mobile(mobile, &code).await? {
                    MobileClaim::Taken { owner: o } => {
                        contact.mobile_claim = Some(o.clone());
                        owner = Some(o);
                    }
                    MobileClaim::InProgress => {
                        tokio::time::sleep(IN_PROGRESS_BACKOFF).await;
                        continue;
                    }
                    MobileClaim::Raced => continue,
                }
            }

            // Past half the lease another writer may soon judge our claim
            // stale; give it back rather than race that writer.
            if let (Some(mobile), Some(o)) = (&new_mobile, &owner) {
                if now_ms() - started > self.settings.claim_lease_ms / 2 {
                    self.store
                        .index_release(Index::Mobile, mobile.as_str(), o)
                        .await?;
                    return Err(EngineError::Contention(format!("contact {code}")));
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

    async fn claim_mobile(
        &self,
        mobile: &MobileNumber,
        code: &ContactCode,
    ) -> Result<MobileClaim, EngineError> {
        let started = now_ms();
        let owner = new_owner(self.instance, code.as_str());
        let current = self.store.index_get(Index::Mobile, mobile.as_str()).await?;
        let expected = match current {
            None => None,
            Some(holder) => {
                let stale = started - holder.since_ms > self.settings.claim_lease_ms;
                let holder_code = ContactCode::from_trusted(record_of(&holder.owner).to_owned());
                if holder_code == *code {
                    // Our contact, another attempt: it does not carry the
                    // number yet (or we would not be claiming it). Made by
                    // this instance, that attempt has ended (the shard runs
                    // one command per contact at a time): take it over.
                    if !stale && !made_by(&holder.owner, self.instance) {
                        return Ok(MobileClaim::InProgress);
                    }
                } else {
                    let theirs = self
                        .store
                        .get_contact(&holder_code)
                        .await?
                        .is_some_and(|o| o.value.mobile.as_ref() == Some(mobile));
                    if theirs || !stale {
                        return Err(number_taken());
                    }
                }
                Some(holder.owner)
            }
        };
        let claimed = self
            .store
            .index_claim(
                Index::Mobile,
                mobile.as_str(),
                expected.as_deref(),
                &owner,
                started,
            )
            .await?;
        Ok(match claimed {
            Ok(()) => MobileClaim::Taken { owner },
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
