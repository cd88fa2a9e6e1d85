//! What an import lets into the store. A dump line is the store's own
//! encoding, so it bypasses every rule the API enforces; an import is
//! therefore held to the domain's types (a card number of the configured
//! format, amounts within `Amount`'s bounds — enforced when the line is
//! read —, records the engine can read back, a bounded time left) and, when
//! merging into live data, may add records only next to cards it created
//! itself and leaves its mark in their history.

use std::collections::HashSet;

use time::OffsetDateTime;

use crate::domain::{Actor, Card, CardNumber, CardNumberFormat, HistoryEntry, Operation};
use crate::store::records::check_record;

pub struct ImportRules {
    pub card_format: CardNumberFormat,
    /// The idempotency retention: no record may be kept longer.
    pub max_ttl_ms: i64,
    /// Who imports, when merging into a store that holds data (`None`: a
    /// restore into an empty store, which gives back the dump exactly).
    pub merge_by: Option<Actor>,
    pub now: OffsetDateTime,
}

/// The rules applied while one import runs.
pub struct Checks {
    rules: ImportRules,
    /// Cards this import created (merging only): the only ones it may add
    /// records to.
    created: HashSet<CardNumber>,
}

impl Checks {
    pub fn new(rules: ImportRules) -> Checks {
        Checks {
            rules,
            created: HashSet::new(),
        }
    }

    pub fn card(&self, card: &Card) -> Result<(), String> {
        let parsed = self
            .rules
            .card_format
            .parse(card.number.as_str())
            .map_err(|e| e.message)?;
        if parsed != card.number {
            return Err(format!(
                "the card number {:?} is not normalized",
                card.number.as_str()
            ));
        }
        Ok(())
    }

    /// The history a merged card is written with: the dump's, then an
    /// entry that says who imported it and when (its earlier entries came
    /// from elsewhere).
    pub fn history(&self, card: &Card, history: &[HistoryEntry]) -> Vec<HistoryEntry> {
        let mut all = history.to_vec();
        if let Some(by) = &self.rules.merge_by {
            all.push(HistoryEntry {
                at: self.rules.now,
                login: by.login.clone(),
                role: by.role,
                operation: Operation::Import,
                from: card.status,
                to: card.status,
                reason_code: None,
                reason_name: None,
                detail: Some("imported with merge".into()),
                bonus: None,
            });
        }
        all
    }

    /// After a card line was written: whether it was created.
    pub fn card_written(&mut self, number: &CardNumber, created: bool) {
        if created && self.rules.merge_by.is_some() {
            self.created.insert(number.clone());
        }
    }

    pub fn record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<(), String> {
        if self.rules.merge_by.is_some() && !self.created.contains(number) {
            return Err(format!(
                "a record for card {} which this import did not create: a merge adds records only to its own cards",
                number.as_str()
            ));
        }
        match ttl_ms {
            Some(ms) if (1..=self.rules.max_ttl_ms).contains(&ms) => {}
            _ => {
                return Err(format!(
                    "TtlMs {ttl_ms:?} is not between 1 and the retention, {} ms",
                    self.rules.max_ttl_ms
                ))
            }
        }
        check_record(key, value)
    }
}
