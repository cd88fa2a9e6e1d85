//! The last version of each card this instance read or wrote, with the
//! records (purchases, outcomes) it wrote with it: the base a write is
//! computed on, so that a purchase, a refund or a status change on a card
//! seen before costs one conditional write and no read first (issue 20,
//! item 2).
//!
//! Not a cache that answers anything: an entry may be behind another
//! instance's write, and is only ever used for a write that names its
//! version. A stale entry loses the compare-and-set (every write of a
//! card or of its records raises the card's version), and the command
//! then reads the store; a refusal or a replay is never answered from it.
//! So nothing here needs invalidations. Bounded (LRU per segment, a few
//! records per card): an evicted card costs one read again.
//!
//! One hole a version check cannot close: a store that lost its data
//! (restarted without its AOF, restored, `SWAPDB`) starts versions again,
//! and a card written back up to the very version remembered here would
//! pass the check with another state. Entries are therefore trusted for
//! `MAX_AGE` only, far less than a reload and as many writes take.
//!
//! Stopgap until the shard owns its cards' decoded state (issue 20,
//! item 1), which takes this over.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use crate::domain::{Card, CardNumber};
use crate::store::Versioned;

/// Cards remembered: about 360 bytes of heap each, plus their records.
const CAPACITY: usize = 32_768;
const SEGMENTS: usize = 16;
/// Records remembered per card (the newest written): a purchase's refunds
/// and cancel usually follow it within a few writes of its card.
const RECORDS_PER_CARD: usize = 4;
/// How long an entry is a write's base (see above).
const MAX_AGE: Duration = Duration::from_secs(30);

struct Entry {
    card: Versioned<Card>,
    at: Instant,
    /// Records as they are at `card.version`, newest last.
    records: Vec<(String, String)>,
}

pub(crate) struct LastSeen {
    segments: Vec<Mutex<LruCache<CardNumber, Entry>>>,
}

impl LastSeen {
    pub(crate) fn new() -> LastSeen {
        let per = NonZeroUsize::new(CAPACITY / SEGMENTS).unwrap_or(NonZeroUsize::MIN);
        LastSeen {
            segments: (0..SEGMENTS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
        }
    }

    fn segment(&self, number: &CardNumber) -> &Mutex<LruCache<CardNumber, Entry>> {
        let mut h = DefaultHasher::new();
        number.hash(&mut h);
        &self.segments[(h.finish() % SEGMENTS as u64) as usize]
    }

    /// The last version seen of the card, if remembered.
    pub(crate) fn get(&self, number: &CardNumber) -> Option<Versioned<Card>> {
        self.segment(number)
            .lock()
            .get(number)
            .filter(|e| e.at.elapsed() < MAX_AGE)
            .map(|e| e.card.clone())
    }

    /// The last version seen of the card with one of its records as it is
    /// at that version, if both are remembered.
    pub(crate) fn get_with(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Option<(Versioned<Card>, String)> {
        let mut seg = self.segment(number).lock();
        let entry = seg.get(number).filter(|e| e.at.elapsed() < MAX_AGE)?;
        let (_, value) = entry.records.iter().rev().find(|(k, _)| k == key)?;
        Some((entry.card.clone(), value.clone()))
    }

    /// Remembers a version read (or handed back by a lost write): the
    /// latest word, even if lower than the one remembered (a store restored
    /// or flushed starts versions again). Its records are known only if
    /// this very version was.
    pub(crate) fn saw(&self, card: &Versioned<Card>) {
        let mut seg = self.segment(&card.value.number).lock();
        // The same state again: what was known of it stays true.
        let records = match seg.pop(&card.value.number) {
            Some(e) if e.card == *card => e.records,
            _ => Vec::new(),
        };
        seg.put(
            card.value.number.clone(),
            Entry {
                card: card.clone(),
                at: Instant::now(),
                records,
            },
        );
    }

    /// Remembers this instance's write of `next` over version `from`, with
    /// the records it wrote. Records known at `from` are still as they
    /// were at `from + 1` (this write changed only those it names).
    pub(crate) fn wrote(&self, next: &Card, from: u64, written: &[(&str, &str)]) {
        let mut seg = self.segment(&next.number).lock();
        let mut records = match seg.pop(&next.number) {
            Some(e) if e.card.version == from && e.at.elapsed() < MAX_AGE => e.records,
            _ => Vec::new(),
        };
        for (key, value) in written {
            records.retain(|(k, _)| k != key);
            records.push(((*key).to_owned(), (*value).to_owned()));
        }
        if records.len() > RECORDS_PER_CARD {
            records.drain(..records.len() - RECORDS_PER_CARD);
        }
        seg.put(
            next.number.clone(),
            Entry {
                card: Versioned {
                    value: next.clone(),
                    version: from + 1,
                },
                at: Instant::now(),
                records,
            },
        );
    }
}
