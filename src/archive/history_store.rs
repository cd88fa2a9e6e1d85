//! A store whose card history pages on into the archive: Redis keeps the
//! newest entries of a card (the hot window the archiver trims to), and a
//! page that reaches past them is completed from PostgreSQL, with the same
//! sequence numbers and cursors, so a client pages from one into the other
//! without noticing. Everything else goes to the inner store untouched.

use std::sync::Arc;

use async_trait::async_trait;

use super::postgres::Archive;
use crate::domain::{Card, CardNumber, HistoryEntry};
use crate::store::{
    CardRecordWrite, CardStore, Cas, HistoryPage, PurchaseCommit, PurchaseWrite, Store, StoreError,
    Versioned,
};

pub struct WithArchive {
    inner: Arc<dyn Store>,
    url: String,
    /// Connected on first need, and again after the connection broke.
    archive: tokio::sync::Mutex<Option<Arc<Archive>>>,
}

impl WithArchive {
    /// `url` may hold a password: it is never logged.
    pub fn new(inner: Arc<dyn Store>, url: String) -> WithArchive {
        WithArchive {
            inner,
            url,
            archive: tokio::sync::Mutex::new(None),
        }
    }

    async fn archive(&self) -> Result<Arc<Archive>, StoreError> {
        let mut slot = self.archive.lock().await;
        if let Some(a) = slot.as_ref().filter(|a| !a.is_closed()) {
            return Ok(a.clone());
        }
        let a = Arc::new(
            Archive::connect_reader(&self.url)
                .await
                .map_err(|e| StoreError::Unavailable(format!("archive: {e}")))?,
        );
        *slot = Some(a.clone());
        Ok(a)
    }

    /// The rest of a page from the archive: entries below `below`, newest
    /// first, at most `limit`.
    async fn archived(
        &self,
        number: &CardNumber,
        below: u64,
        limit: usize,
    ) -> Result<Vec<(u64, HistoryEntry)>, StoreError> {
        let rows = self
            .archive()
            .await?
            .history(number.as_str(), below, limit)
            .await
            .map_err(|e| StoreError::Unavailable(format!("archive: {e}")))?;
        rows.into_iter()
            .map(|(seq, body)| {
                let entry = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                    key: format!("archive {number}:{seq}"),
                    reason: e.to_string(),
                })?;
                Ok((seq, entry))
            })
            .collect()
    }
}

#[async_trait]
impl CardStore for WithArchive {
    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let mut page = self.inner.card_history(number, before, limit).await?;
        let archived_below = std::mem::take(&mut page.archived_below);
        // Through this store every entry is reachable: the page reports
        // nothing as archived away.
        if page.next.is_some() || archived_below == 0 {
            return Ok(page);
        }
        if page.entries.len() >= limit {
            // A full page that ends where the store does: the next one
            // comes from the archive.
            page.next = page.entries.last().map(|(seq, _)| *seq).filter(|s| *s > 0);
            return Ok(page);
        }
        // The store has nothing older than `archived_below`: go on there.
        let below = before.map_or(archived_below, |b| b.min(archived_below));
        let want = limit - page.entries.len();
        let older = self.archived(number, below, want).await?;
        let full = older.len() == want;
        page.entries.extend(older);
        let last = page.entries.last().map(|(seq, _)| *seq);
        page.next = match last {
            Some(seq) if full && seq > 0 => Some(seq),
            _ => None,
        };
        Ok(page)
    }

    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        self.inner.get_card(number).await
    }

    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.inner.update_card(card, expected_version, entry).await
    }

    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        self.inner
            .update_card_with(card, expected_version, entry, records, ttl_secs)
            .await
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        self.inner.commit_purchase(write).await
    }
}

// Everything but the history is the wrapped store's.
crate::forward_health!(WithArchive, |s| s.inner);
crate::forward_records!(WithArchive, |s| s.inner);
crate::forward_contacts!(WithArchive, |s| s.inner);
crate::forward_bulk!(WithArchive, |s| s.inner);
