//! The cross-record lookups: a mobile number's contact and a contact's
//! current card, each believed only when both sides of the index agree.

use super::claims::record_of;
use super::context::Ops;
use super::error::EngineError;
use crate::domain::{Card, CardNumber, Contact, ContactCode, MobileNumber};
use crate::store::{Index, Versioned};

impl Ops {
    /// The contact that owns `mobile`, verified from both sides: the index
    /// names the contact and the contact still has that number.
    pub(crate) async fn contact_by_mobile(
        &self,
        mobile: &MobileNumber,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        self.contact_by_mobile_read(mobile, false).await
    }

    /// As [`Ops::contact_by_mobile`], for an answer only (balance by phone):
    /// may come from the store's cache.
    pub(crate) async fn contact_by_mobile_cached(
        &self,
        mobile: &MobileNumber,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        self.contact_by_mobile_read(mobile, true).await
    }

    async fn contact_by_mobile_read(
        &self,
        mobile: &MobileNumber,
        cached: bool,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        let claim = if cached {
            self.store
                .index_get_cached(Index::Mobile, mobile.as_str())
                .await?
        } else {
            self.store.index_get(Index::Mobile, mobile.as_str()).await?
        };
        let Some(claim) = claim else {
            return Ok(None);
        };
        let code = ContactCode::from_trusted(record_of(&claim.owner).to_owned());
        let contact = if cached {
            self.store.get_contact_cached(&code).await?
        } else {
            self.store.get_contact(&code).await?
        };
        Ok(contact.filter(|c| c.value.mobile.as_ref() == Some(mobile)))
    }

    /// The contact's current card, verified from both sides: the index names
    /// the card and the card names the contact. A claim whose card write
    /// never happened is not a binding.
    pub(crate) async fn current_card(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        self.current_card_read(code, false).await
    }

    /// As [`Ops::current_card`], for an answer only (balance by phone or
    /// code, contact views): may come from the store's cache.
    pub(crate) async fn current_card_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        self.current_card_read(code, true).await
    }

    async fn current_card_read(
        &self,
        code: &ContactCode,
        cached: bool,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        let claim = if cached {
            self.store
                .index_get_cached(Index::ContactCard, code.as_str())
                .await?
        } else {
            self.store
                .index_get(Index::ContactCard, code.as_str())
                .await?
        };
        let Some(claim) = claim else {
            return Ok(None);
        };
        let number = CardNumber::from_trusted(record_of(&claim.owner).to_owned());
        let card = if cached {
            self.card_cached(&number).await?
        } else {
            self.store.get_card(&number).await?
        };
        Ok(card.filter(|c| c.value.contact.as_ref() == Some(code)))
    }
}
