//! Contact create-or-update. A mobile number belongs to at most one contact:
//! the number's index entry is claimed before the contact record is written,
//! and given back if that write loses a race.

use super::commands::ContactView;
use super::error::EngineError;
use super::ops::{now_ms, Ops, MAX_ATTEMPTS};
use crate::domain::{Contact, ContactCode, ContactPatch, ErrorKey, RuleError};
use crate::store::{Cas, Index};

fn number_taken() -> EngineError {
    RuleError::new(
        ErrorKey::MobileNumberBelongsToAnotherContact,
        "the mobile number belongs to another contact",
    )
    .into()
}

impl Ops {
    pub(crate) async fn upsert_contact(
        &self,
        code: ContactCode,
        patch: ContactPatch,
    ) -> Result<ContactView, EngineError> {
        let lease = self.settings.claim_lease_ms;
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
            contact.apply(patch.clone());
            let new_mobile = contact
                .mobile
                .clone()
                .filter(|m| Some(m) != old_mobile.as_ref());

            // (number, previous owner) when this attempt took the number's claim.
            let mut claimed: Option<(String, Option<String>)> = None;
            if let Some(mobile) = &new_mobile {
                let started = now_ms();
                match self
                    .store
                    .index_claim(Index::Mobile, mobile.as_str(), None, code.as_str(), started)
                    .await?
                {
                    Ok(()) => claimed = Some((mobile.as_str().to_owned(), None)),
                    Err(Some(holder)) if holder.owner == code.as_str() => {}
                    Err(Some(holder)) => {
                        let other = self
                            .store
                            .get_contact(&ContactCode::from_trusted(holder.owner.clone()))
                            .await?;
                        let really_theirs =
                            other.is_some_and(|o| o.value.mobile.as_ref() == Some(mobile));
                        if really_theirs || started - holder.since_ms <= lease {
                            return Err(number_taken());
                        }
                        let took = self
                            .store
                            .index_claim(
                                Index::Mobile,
                                mobile.as_str(),
                                Some(&holder.owner),
                                code.as_str(),
                                started,
                            )
                            .await?;
                        if took.is_err() {
                            continue;
                        }
                        claimed = Some((mobile.as_str().to_owned(), Some(holder.owner)));
                    }
                    Err(None) => continue,
                }
            }

            match self.store.put_contact(&contact, expected).await? {
                Cas::Applied => {
                    if let (Some(old), Some(_)) = (&old_mobile, &new_mobile) {
                        self.store
                            .index_release(Index::Mobile, old.as_str(), code.as_str())
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
                    if let Some((mobile, previous)) = claimed {
                        match previous {
                            Some(prev) => {
                                let _ = self
                                    .store
                                    .index_claim(
                                        Index::Mobile,
                                        &mobile,
                                        Some(code.as_str()),
                                        &prev,
                                        now_ms(),
                                    )
                                    .await?;
                            }
                            None => {
                                self.store
                                    .index_release(Index::Mobile, &mobile, code.as_str())
                                    .await?
                            }
                        }
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("contact {code}")))
    }
}
