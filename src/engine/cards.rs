//! The card family: balance, history and transactions (reads), and the
//! status commands issue, activate, block and unblock.

use super::context::Ops;
use super::error::EngineError;
use super::support::{cannot_find_mobile, MAX_ATTEMPTS};
use super::types::{BalanceView, HistoryPage};
use crate::domain::{card::Change, Actor, Card, CardNumber, ErrorKey, MobileNumber, RuleError};
use crate::metrics as m;
use crate::store::Cas;

/// History entries read per round trip when listing transactions.
const TRANSACTIONS_SCAN: usize = 200;

impl Ops {
    pub(crate) async fn balance(&self, number: &CardNumber) -> Result<BalanceView, EngineError> {
        let card = self
            .settled(self.load_card_cached(number).await?)
            .await?
            .value;
        let contact = match &card.contact {
            Some(code) => self.store.get_contact_cached(code).await?.map(|c| c.value),
            None => None,
        };
        Ok(BalanceView { card, contact })
    }

    /// Pages back through the history, keeping the bonus operations.
    pub(crate) async fn transactions(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        self.load_card(number).await?;
        let mut cursor = before;
        let mut entries = Vec::new();
        loop {
            let page = self
                .store
                .card_history(number, cursor, TRANSACTIONS_SCAN)
                .await?;
            for (seq, entry) in page.entries {
                if entries.len() == limit {
                    return Ok(HistoryPage {
                        entries,
                        next: Some(seq + 1),
                        older_archived: false,
                    });
                }
                if entry.bonus.is_some() {
                    entries.push((seq, entry));
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => {
                    return Ok(HistoryPage {
                        entries,
                        next: None,
                        older_archived: page.archived_below > 0,
                    })
                }
            }
        }
    }

    /// A command's change of its card (issue, activate, block, unblock):
    /// as [`Ops::change_card`], but the first try is on the write base
    /// (one round trip when it is current);
    /// a refusal or "nothing to do" is only answered on a fresh read, and
    /// a fresh read first finishes a replacement the card takes part in.
    /// `needs_contact`: whether the rules need the contact's data sufficiency
    /// (activate, unblock); other operations skip that read.
    async fn change_status<F>(
        &self,
        number: &CardNumber,
        needs_contact: bool,
        actor: &Actor,
        mut decide: F,
    ) -> Result<(), EngineError>
    where
        F: for<'a> FnMut(&'a Card, bool) -> Result<Change, RuleError>,
    {
        let mut base = self
            .write_base(number)
            .await?
            .filter(|c| c.value.unfinished_replacement().is_none());
        for _ in 0..MAX_ATTEMPTS {
            let (current, fresh) = match base.take() {
                Some(card) => (card, false),
                None => {
                    let card = self.load_card(number).await?;
                    if self.finish_replacement(&card.value, actor).await? {
                        continue;
                    }
                    (card, true)
                }
            };
            let sufficient = needs_contact && self.is_sufficient(&current.value).await?;
            // Answered on a fresh read, a refusal ("already Blocked") or
            // "nothing to do" (the card is already Issued, Active) may be
            // the work of this request's own first attempt, answered 503
            // for want of replicas: not answered before they hold it
            // (`replicated.rs`).
            let change = match decide(&current.value, sufficient) {
                Ok(change) => change,
                Err(refusal) if fresh => return self.replicated(number, Err(refusal.into())).await,
                Err(_) => continue,
            };
            match change {
                Change::Unchanged if fresh => return self.replicated(number, Ok(())).await,
                Change::Unchanged => continue,
                Change::Changed { card, entry } => {
                    let since = self.continuity();
                    if self
                        .store
                        .update_card(&card, current.version, &entry)
                        .await?
                        == Cas::Applied
                    {
                        m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                        count_ended_holds(&current.value, &card, self.clock.now());
                        self.owned.wrote(&card, current.version, &[], since);
                        return Ok(());
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }

    pub(crate) async fn issue(
        &self,
        actor: &Actor,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.change_status(number, false, actor, |card, _| card.issue(actor, now))
            .await
    }

    pub(crate) async fn activate(
        &self,
        actor: &Actor,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.change_status(number, true, actor, |card, sufficient| {
            card.activate(sufficient, actor, now)
        })
        .await
    }

    /// With `ContactMobileNumber` given, the card must belong to that
    /// contact; this is a lookup, checked before the block/unblock rules.
    async fn check_owner(
        &self,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
    ) -> Result<(), EngineError> {
        // Without a mobile number there is nothing to check here: the
        // write's own read answers a card that does not exist.
        let Some(mobile) = mobile else {
            return Ok(());
        };
        let card = self.load_card(number).await?;
        let contact = self
            .contact_by_mobile(mobile)
            .await?
            .ok_or_else(|| cannot_find_mobile(mobile))?;
        if card.value.contact.as_ref() != Some(&contact.value.code) {
            return Err(RuleError::new(
                ErrorKey::CardNumberBindToAnotherContact,
                "the card is not bound to the contact with this mobile number",
            )
            .into());
        }
        Ok(())
    }

    pub(crate) async fn block(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
        reason_code: &str,
        reason_name: Option<String>,
    ) -> Result<(), EngineError> {
        self.check_owner(number, mobile).await?;
        let now = self.clock.now();
        self.change_status(number, false, actor, |card, _| {
            card.block(actor, reason_code, reason_name.clone(), now)
        })
        .await
    }

    pub(crate) async fn unblock(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
        reason_code: &str,
        reason_name: Option<String>,
    ) -> Result<(), EngineError> {
        self.check_owner(number, mobile).await?;
        let now = self.clock.now();
        self.change_status(number, true, actor, |card, sufficient| {
            card.unblock(actor, reason_code, reason_name.clone(), sufficient, now)
        })
        .await
    }
}

/// A block ends the card's holds (`Card::release_all_holds`): each is
/// counted as a release does (or as expired, if it was past its end), so
/// `loyalty_holds_total` accounts for every hold opened.
fn count_ended_holds(before: &Card, after: &Card, now: time::OffsetDateTime) {
    for ended in before
        .holds
        .iter()
        .filter(|h| !after.holds.iter().any(|k| k.purchase_id == h.purchase_id))
    {
        m::hold(if ended.is_open(now) {
            "released"
        } else {
            "expired"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reference::{CardType, Category};
    use crate::domain::{Amount, Hold};
    use metrics_exporter_prometheus::PrometheusBuilder;
    use time::macros::datetime;

    fn hold(id: &str, until: time::OffsetDateTime) -> Hold {
        Hold {
            purchase_id: id.into(),
            owner: "o".into(),
            amount: Amount::from_hundredths(100).unwrap(),
            bonus: Amount::ZERO,
            lots: Vec::new(),
            until,
        }
    }

    #[test]
    fn the_holds_a_block_ends_are_counted_released_or_expired() {
        let now = datetime!(2026-12-07 12:00 UTC);
        let mut before = Card::new(
            CardNumber::from_trusted("7000000000001".into()),
            Category::Plastic,
            CardType::Bonus,
        );
        before.holds = vec![
            hold("open-1", now + time::Duration::minutes(5)),
            hold("open-2", now + time::Duration::minutes(5)),
            hold("past", now - time::Duration::minutes(1)),
            hold("kept", now + time::Duration::minutes(5)),
        ];
        let mut after = before.clone();
        after.holds.retain(|h| h.purchase_id == "kept");
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || count_ended_holds(&before, &after, now));
        let text = handle.render();
        assert!(
            text.contains(r#"loyalty_holds_total{outcome="released"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"loyalty_holds_total{outcome="expired"} 1"#),
            "{text}"
        );
    }
}
