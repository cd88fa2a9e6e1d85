//! Export: the store, page by page, as dump lines (docs/export.md). Memory
//! stays bounded by one page of records; progress goes to the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::format::{self, Counts};
use crate::metrics as m;
use crate::store::{Store, StoreError};

pub struct Exporter {
    store: Arc<dyn Store>,
    page: usize,
    state: State,
    counts: Counts,
    started: Instant,
    last_progress: Instant,
    interval: Duration,
}

enum State {
    Header,
    Pages(Option<String>),
    End,
    Done,
}

impl Exporter {
    pub fn new(store: Arc<dyn Store>, page: usize, progress_interval: Duration) -> Exporter {
        let now = Instant::now();
        Exporter {
            store,
            page: page.max(1),
            state: State::Header,
            counts: Counts::default(),
            started: now,
            last_progress: now,
            interval: progress_interval,
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The next lines of the dump (each ending in a newline), `None` when
    /// it is complete. A page may come back empty (a scan step that found
    /// nothing); the caller just asks again.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Header => {
                let at = OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .unwrap_or_default();
                self.state = State::Pages(None);
                Ok(Some(line(&format::header(at))))
            }
            State::Pages(cursor) => {
                let page = match self.store.dump_page(cursor.as_deref(), self.page).await {
                    Ok(page) => page,
                    Err(e) => {
                        // Asking again resumes at the same page.
                        self.state = State::Pages(cursor);
                        return Err(e);
                    }
                };
                let mut out = Vec::with_capacity(page.items.len() * 256);
                let n = page.items.len() as u64;
                for item in page.items {
                    self.counts.add(&item);
                    let encoded = format::encode(item).map_err(|e| StoreError::Corrupt {
                        key: String::new(),
                        reason: format!("cannot encode: {e}"),
                    })?;
                    out.extend_from_slice(&encoded);
                    out.push(b'\n');
                }
                m::bulk_lines("export", "exported", n);
                self.state = match page.next {
                    Some(next) => State::Pages(Some(next)),
                    None => State::End,
                };
                self.progress();
                Ok(Some(out))
            }
            State::End => {
                self.log("export done");
                Ok(Some(line(&format::end(self.counts.clone()))))
            }
            State::Done => Ok(None),
        }
    }

    fn progress(&mut self) {
        if self.last_progress.elapsed() >= self.interval {
            self.last_progress = Instant::now();
            self.log("export progress");
        }
    }

    fn log(&self, message: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let c = &self.counts;
        let lines = c.cards + c.records + c.contacts + c.indexes;
        let rate = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
        tracing::info!(
            cards = c.cards,
            records = c.records,
            contacts = c.contacts,
            indexes = c.indexes,
            lines_per_sec = rate.round() as u64,
            elapsed_secs = secs.round() as u64,
            "{message}"
        );
    }
}

fn line<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own header and trailer always serialise.
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Does the store hold anything an export would write?
pub async fn store_is_empty(store: &dyn Store) -> Result<bool, StoreError> {
    let mut cursor: Option<String> = None;
    loop {
        let page = store.dump_page(cursor.as_deref(), 100).await?;
        if !page.items.is_empty() {
            return Ok(false);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(true),
        }
    }
}
