//! Import: dump lines into a store, creating only what is missing (an
//! import never overwrites; docs/export.md). Lines run concurrently, a
//! bounded number at a time; card records wait for every line before them,
//! so a card's records always find the card written. Every line is held to
//! `import_rules` first; one that fails them is rejected, not written.

use std::sync::Arc;

use futures_util::future::try_join_all;

use super::format::{decode, Counts, DumpLine, FORMAT, VERSION};
use super::import_rules::{Checks, ImportRules};
use super::lines::Line;
use super::report::{Outcome, Report};
use crate::domain::{ErrorKey, RuleError};
use crate::store::{Cas, DumpItem, Store, StoreError};

/// Why an import stopped.
#[derive(Debug)]
pub enum ImportError {
    /// Not a dump this version reads: nothing after the failing line was
    /// written.
    Refused(RuleError),
    Store(StoreError),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> ImportError {
        ImportError::Store(e)
    }
}

pub struct Importer {
    store: Arc<dyn Store>,
    report: Report,
    pending: Vec<DumpItem>,
    parallel: usize,
    header: bool,
    end: Option<Counts>,
    checks: Checks,
}

/// The longest time left an imported record may keep: the retention.
pub fn retention_ms(settings: &crate::config::Settings) -> i64 {
    i64::try_from(
        settings
            .bonus
            .idempotency_retention_secs
            .saturating_mul(1000),
    )
    .unwrap_or(i64::MAX)
}

fn refused(message: impl Into<String>) -> ImportError {
    ImportError::Refused(RuleError::new(ErrorKey::InvalidParameter, message))
}

impl Importer {
    pub fn new(
        store: Arc<dyn Store>,
        parallel: usize,
        report: Report,
        rules: ImportRules,
    ) -> Importer {
        Importer {
            store,
            report,
            pending: Vec::new(),
            parallel: parallel.max(1),
            header: false,
            end: None,
            checks: Checks::new(rules),
        }
    }

    pub async fn line(&mut self, line: Line) -> Result<(), ImportError> {
        let (number, value) = match line {
            Line::Json(n, v) => (n, v),
            Line::Rejected(n, e) if self.header => {
                self.report.reject(n, &e, None);
                return Ok(());
            }
            Line::Rejected(n, e) => {
                return Err(refused(format!(
                    "line {n}: {}; a dump starts with its header line",
                    e.message
                )))
            }
        };
        let parsed = match decode(value) {
            Ok(p) => p,
            Err(message) if self.header => {
                self.report.reject(
                    number,
                    &RuleError::new(ErrorKey::InvalidJson, message),
                    None,
                );
                return Ok(());
            }
            Err(message) => {
                return Err(refused(format!(
                    "line {number}: {message}; a dump starts with its header line"
                )))
            }
        };
        match parsed {
            DumpLine::Header(h) if !self.header => {
                if h.format != FORMAT || h.version != VERSION {
                    return Err(refused(format!(
                        "a {:?} dump of version {}; this server reads {FORMAT:?} version {VERSION}",
                        h.format, h.version
                    )));
                }
                self.header = true;
            }
            _ if !self.header => {
                return Err(refused(format!(
                    "line {number}: a dump starts with its header line"
                )))
            }
            DumpLine::Header(_) => self.reject(number, "a second header"),
            _ if self.end.is_some() => self.reject(number, "a line after the dump's end"),
            DumpLine::End(counts) => {
                self.flush().await?;
                self.end = Some(counts);
            }
            DumpLine::Item(item) => {
                if let Err(why) = self.check(&item) {
                    self.reject(number, &why);
                    return Ok(());
                }
                let item = match item {
                    DumpItem::Card { card, history } => DumpItem::Card {
                        history: self.checks.history(&card, &history),
                        card,
                    },
                    other => other,
                };
                // Only a record waits for what came before it (its card);
                // cards, contacts and index entries go together.
                let is_record = |i: &DumpItem| matches!(i, DumpItem::Record { .. });
                if self
                    .pending
                    .first()
                    .is_some_and(|p| is_record(p) != is_record(&item))
                {
                    self.flush().await?;
                }
                self.pending.push(item);
                if self.pending.len() >= self.parallel {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    fn check(&self, item: &DumpItem) -> Result<(), String> {
        match item {
            DumpItem::Card { card, .. } => self.checks.card(card),
            DumpItem::Record {
                number,
                key,
                value,
                ttl_ms,
            } => self.checks.record(number, key, value, *ttl_ms),
            DumpItem::Contact(_) | DumpItem::Index { .. } => Ok(()),
        }
    }

    fn reject(&mut self, line: u64, why: &str) {
        self.report
            .reject(line, &RuleError::new(ErrorKey::InvalidParameter, why), None);
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        let items = std::mem::take(&mut self.pending);
        let store = &*self.store;
        let outcomes = try_join_all(items.iter().map(|item| restore(store, item))).await?;
        for (item, created) in items.iter().zip(&outcomes) {
            if let DumpItem::Card { card, .. } = item {
                self.checks.card_written(&card.number, *created);
            }
        }
        for created in outcomes {
            self.report.count(if created {
                Outcome::Created
            } else {
                Outcome::Existing
            });
        }
        self.report.progress();
        Ok(())
    }

    /// Writes what is pending; the report, and whether the dump's end line
    /// was read (else the dump was cut short).
    pub async fn finish(mut self) -> Result<(Report, bool), ImportError> {
        self.flush().await?;
        if !self.header {
            return Err(refused("an empty body: a dump starts with its header line"));
        }
        Ok((self.report, self.end.is_some()))
    }

    pub fn report(&self) -> &Report {
        &self.report
    }
}

/// Creates one record unless it exists; whether it did.
async fn restore(store: &dyn Store, item: &DumpItem) -> Result<bool, StoreError> {
    match item {
        DumpItem::Card { card, history } => store.restore_card(card, history).await,
        DumpItem::Record {
            number,
            key,
            value,
            ttl_ms,
        } => store.restore_record(number, key, value, *ttl_ms).await,
        // Version 0: no record at all under this code.
        DumpItem::Contact(contact) => Ok(store.put_contact(contact, 0).await? == Cas::Applied),
        DumpItem::Index { index, key, owner } => {
            Ok(store.index_claim(*index, key, None, owner).await?.is_ok())
        }
    }
}
