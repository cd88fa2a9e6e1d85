//! The last version of each card this instance read or wrote: the base a
//! write is computed on, so that a purchase on a card seen before costs
//! one conditional write and no read first (issue 20, item 2).
//!
//! Not a cache that answers anything: an entry may be behind another
//! instance's write, and is only ever used for a write that names its
//! version. A stale entry loses the compare-and-set, whose reply carries
//! the card as it is now; a refusal is never decided on it (the command
//! reads the store again first). So nothing here needs invalidations.
//! Bounded (LRU per segment): an evicted card costs one read again.
//!
//! Stopgap until the shard owns its cards' decoded state (issue 20,
//! item 1), which takes this over.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

use crate::domain::{Card, CardNumber};
use crate::store::Versioned;

/// Cards remembered: about 360 bytes of heap each, so at most ~25 MB.
const CAPACITY: usize = 65_536;
const SEGMENTS: usize = 16;

pub(crate) struct LastSeen {
    segments: Vec<Mutex<LruCache<CardNumber, Versioned<Card>>>>,
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

    fn segment(&self, number: &CardNumber) -> &Mutex<LruCache<CardNumber, Versioned<Card>>> {
        let mut h = DefaultHasher::new();
        number.hash(&mut h);
        &self.segments[(h.finish() % SEGMENTS as u64) as usize]
    }

    /// The last version seen of the card, if remembered.
    pub(crate) fn get(&self, number: &CardNumber) -> Option<Versioned<Card>> {
        self.segment(number).lock().get(number).cloned()
    }

    /// Remembers a version read or written. Always the latest word, even
    /// if lower than the one remembered: a store restored or flushed
    /// starts versions again (a card's commands run one at a time on its
    /// shard, so no older read of this instance lands after a newer one).
    pub(crate) fn saw(&self, card: &Versioned<Card>) {
        self.segment(&card.value.number)
            .lock()
            .put(card.value.number.clone(), card.clone());
    }
}
