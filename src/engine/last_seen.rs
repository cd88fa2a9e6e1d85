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
//! One hole a version check cannot close: a store that lost writes
//! (restarted from a snapshot without its AOF, failed over to a replica
//! that had not received them, flushed and reloaded) starts versions again
//! from an older one, and a card written back up to the very version
//! remembered here — one write by another instance can do it — passes the
//! check with another state: the write computed here would overwrite that
//! write, and bring back what the store lost (tests/redis/stale_base.rs).
//! No time bound closes it. So every entry carries the store's
//! continuity token (`Store::continuity`) taken *before* the read or write
//! it records, and is a base only while the store still answers that very
//! token: on Redis, while the record cache's invalidation channel has been
//! up, unflushed, since (a restart, a failover, a lost connection or a
//! `FLUSHALL` changes it). A store that cannot vouch (`None`: Redis
//! without the record cache, or with its channel down) gets no base: its
//! writes read first. `MAX_AGE` only keeps entries that would rarely still
//! be current from being tried.
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
/// How long an entry is tried as a write's base (see above).
const MAX_AGE: Duration = Duration::from_secs(30);

/// The store's continuity token when an entry was read or written
/// (`Store::continuity`).
pub(crate) type Continuity = Option<u64>;

struct Entry {
    card: Versioned<Card>,
    at: Instant,
    /// The store's continuity token taken before the read or write that
    /// this entry records: never `None` (such an entry is not kept).
    continuity: u64,
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

    /// The last version seen of the card, if remembered within the
    /// store's continuity `now` (its token as this write begins).
    pub(crate) fn get(&self, number: &CardNumber, now: Continuity) -> Option<Versioned<Card>> {
        let now = now?;
        self.segment(number)
            .lock()
            .get(number)
            .filter(|e| e.continuity == now && e.at.elapsed() < MAX_AGE)
            .map(|e| e.card.clone())
    }

    /// The last version seen of the card with one of its records as it is
    /// at that version, if both are remembered.
    pub(crate) fn get_with(
        &self,
        number: &CardNumber,
        key: &str,
        now: Continuity,
    ) -> Option<(Versioned<Card>, String)> {
        let now = now?;
        let mut seg = self.segment(number).lock();
        let entry = seg
            .get(number)
            .filter(|e| e.continuity == now && e.at.elapsed() < MAX_AGE)?;
        let (_, value) = entry.records.iter().rev().find(|(k, _)| k == key)?;
        Some((entry.card.clone(), value.clone()))
    }

    /// Remembers a version read (or handed back by a lost write) by a call
    /// that began at continuity `since`: the latest word, even if lower
    /// than the one remembered (a store restored or flushed starts versions
    /// again). Its records are known only if this very version was, within
    /// the same continuity. A read the store could not vouch for drops
    /// what was remembered.
    pub(crate) fn saw(&self, card: &Versioned<Card>, since: Continuity) {
        let mut seg = self.segment(&card.value.number).lock();
        let old = seg.pop(&card.value.number);
        let Some(continuity) = since else { return };
        // The same state again: what was known of it stays true.
        let records = match old {
            Some(e) if e.card == *card && e.continuity == continuity => e.records,
            _ => Vec::new(),
        };
        seg.put(
            card.value.number.clone(),
            Entry {
                card: card.clone(),
                at: Instant::now(),
                continuity,
                records,
            },
        );
    }

    /// Remembers this instance's write of `next` over version `from`, with
    /// the records it wrote, by a call that began at continuity `since`.
    /// Records known at `from` (within the same continuity) are still as
    /// they were at `from + 1` (this write changed only those it names).
    pub(crate) fn wrote(
        &self,
        next: &Card,
        from: u64,
        written: &[(&str, &str)],
        since: Continuity,
    ) {
        let mut seg = self.segment(&next.number).lock();
        let old = seg.pop(&next.number);
        let Some(continuity) = since else { return };
        let mut records = match old {
            Some(e)
                if e.card.version == from
                    && e.continuity == continuity
                    && e.at.elapsed() < MAX_AGE =>
            {
                e.records
            }
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
                continuity,
                records,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CardType, Category};

    fn card(version: u64) -> Versioned<Card> {
        Versioned {
            value: Card::new(
                CardNumber::from_trusted("4100000000001".into()),
                Category::Plastic,
                CardType::Bonus,
            ),
            version,
        }
    }

    #[test]
    fn an_entry_is_a_base_only_within_the_continuity_it_was_seen_in() {
        let seen = LastSeen::new();
        let c = card(7);
        let number = c.value.number.clone();
        seen.saw(&c, Some(1));
        assert_eq!(seen.get(&number, Some(1)), Some(c.clone()));
        assert_eq!(
            seen.get(&number, Some(2)),
            None,
            "the store lost data since"
        );
        assert_eq!(seen.get(&number, None), None, "the store cannot vouch now");
        seen.wrote(&c.value, 7, &[("purchase:p", "v")], Some(1));
        assert_eq!(
            seen.get_with(&number, "purchase:p", Some(1))
                .map(|(c, _)| c.version),
            Some(8)
        );
        assert_eq!(seen.get_with(&number, "purchase:p", Some(2)), None);
        // A write that began in another continuity keeps no record known
        // in the old one.
        seen.wrote(&c.value, 8, &[], Some(2));
        assert_eq!(seen.get_with(&number, "purchase:p", Some(2)), None);
        assert!(seen.get(&number, Some(2)).is_some());
        // A read the store could not vouch for forgets the card.
        seen.saw(&card(3), None);
        assert_eq!(seen.get(&number, Some(2)), None);
    }
}
