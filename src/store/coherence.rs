//! The store's coherence feed: what the owners of decoded cards (the
//! engine's shards, `engine/owned.rs`) need to know to answer from memory
//! without being behind the store. The store keeps no decoded card; it
//! only says, for any card, whether anything may have changed it since a
//! given moment:
//!
//! - **Which cards changed.** Every change of a card bumps a counter of its
//!   bucket (the card number hashed over [`BUCKETS`]). A [`Stamp`] taken
//!   before a read holds the counter; the state read answers only while the
//!   counter has not moved. Two cards sharing a bucket cost each other a
//!   re-read, never a stale answer. On Redis the bumps come from the RESP3
//!   tracking invalidations (`redis/tracking.rs`), whoever wrote; the
//!   memory store bumps on its own writes.
//! - **Everything lost.** A flush (the channel lost, a `FLUSHALL`, a
//!   failover) raises the generation: no stamp from before holds, and the
//!   write bases taken before are no bases any more ([`Coherence::continuity`]).
//! - **Whether it vouches now.** Enabled (the channel is established on
//!   every node) and vouched for by a recent heartbeat; checked against the
//!   clock on every use, so it holds even if the tracking task is held up.
//!
//! A counter per bucket rather than a callback into the owners: the owners
//! hold no lock of the store and the store none of theirs, a store that
//! connects late (`startup/deferred_store.rs`) needs no subscription, and
//! the pending-fill protocol of a cache (a read that raced a write never
//! installs the value the write replaced) is the stamp taken before the
//! read, checked when its result is installed and on every answer.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::metrics as m;

/// Buckets of change counters: 8 bytes each (2 MiB). At 10,000 card
/// writes a second a bucket moves every 26 s on average, so a shared
/// bucket rarely costs a re-read.
pub const BUCKETS: usize = 1 << 18;

pub struct Coherence {
    /// False while the feed is not (yet, or no longer) established.
    enabled: AtomicBool,
    /// Until when (ms since `epoch`) the last heartbeat vouches for it.
    vouched_until: AtomicU64,
    /// Raised by every flush: one value spans a stretch in which the feed
    /// was up and the store lost nothing.
    generation: AtomicU64,
    epoch: Instant,
    buckets: Box<[AtomicU64]>,
}

/// When a read began, as the feed saw the card then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    generation: u64,
    bucket: u32,
    changes: u64,
}

impl Stamp {
    /// The store's continuity token this stamp was taken in.
    pub fn continuity(&self) -> u64 {
        self.generation
    }
}

impl Coherence {
    /// Off until the feed is established ([`Coherence::enable`]) and
    /// vouched for ([`Coherence::vouch`]).
    pub fn new() -> Coherence {
        Coherence {
            enabled: AtomicBool::new(false),
            vouched_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            epoch: Instant::now(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A store that sees every write itself (the memory store): on and
    /// vouched for for good; it reports its own writes with
    /// [`Coherence::card_changed`].
    pub fn always() -> Coherence {
        let c = Coherence::new();
        c.vouched_until.store(u64::MAX, Ordering::Release);
        c.enabled.store(true, Ordering::Release);
        c
    }

    fn bucket(number: &str) -> usize {
        let mut h = DefaultHasher::new();
        number.hash(&mut h);
        (h.finish() % BUCKETS as u64) as usize
    }

    /// Serving: enabled, and a heartbeat vouches for the feed now.
    pub fn is_serving(&self) -> bool {
        self.is_enabled() && !self.is_overdue()
    }

    /// The flag alone (a cache re-checks it under its own lock).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn is_overdue(&self) -> bool {
        self.ms(Instant::now()) >= self.vouched_until.load(Ordering::Acquire)
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The generation while serving: the same value later means the feed
    /// stayed up and unflushed in between (a Redis restarted, failed over
    /// or flushed would have changed it). `None` while it cannot vouch.
    /// Read twice around the check, so that a flush under way between them
    /// is not missed.
    pub fn continuity(&self) -> Option<u64> {
        let before = self.generation.load(Ordering::SeqCst);
        if !self.is_serving() {
            return None;
        }
        (self.generation.load(Ordering::SeqCst) == before).then_some(before)
    }

    /// Taken before reading `number`'s card from the store; `None` while
    /// the feed cannot vouch (then nothing read may answer later).
    pub fn stamp(&self, number: &str) -> Option<Stamp> {
        let generation = self.generation.load(Ordering::SeqCst);
        if !self.is_serving() {
            return None;
        }
        let bucket = Self::bucket(number);
        let changes = self.buckets[bucket].load(Ordering::SeqCst);
        (self.generation.load(Ordering::SeqCst) == generation).then_some(Stamp {
            generation,
            bucket: bucket as u32,
            changes,
        })
    }

    /// Whether what was read under `stamp` is still the store's state: the
    /// feed serves, nothing was lost and no change of the card (or of a
    /// card sharing its bucket) was reported since.
    pub fn holds(&self, stamp: &Stamp) -> bool {
        self.is_serving()
            && self.generation.load(Ordering::SeqCst) == stamp.generation
            && self
                .buckets
                .get(stamp.bucket as usize)
                .is_some_and(|b| b.load(Ordering::SeqCst) == stamp.changes)
    }

    /// The card `number` changed (anyone's write, an expiry, an eviction).
    pub fn card_changed(&self, number: &str) {
        self.buckets[Self::bucket(number)].fetch_add(1, Ordering::SeqCst);
    }

    /// A heartbeat proved the feed caught up: serve until `until` unless
    /// another heartbeat vouches for it again by then.
    pub fn vouch(&self, until: Instant) {
        self.vouched_until.store(self.ms(until), Ordering::Release);
    }

    /// Everything before is lost to the owners: with `enabled == false`
    /// also stops serving until [`Coherence::enable`]. `reason` labels the
    /// metric.
    pub fn flush(&self, enabled: bool, reason: &'static str) {
        if !enabled {
            self.enabled.store(false, Ordering::Release);
            m::cache_serving(false);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        m::cache_flushed(reason);
    }

    /// Serves again: the feed is up on every node, and was flushed when it
    /// was lost.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
        m::cache_serving(true);
    }
}

impl Default for Coherence {
    fn default() -> Coherence {
        Coherence::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn serving() -> Coherence {
        let c = Coherence::new();
        c.vouch(Instant::now() + Duration::from_secs(3600));
        c.enable();
        c
    }

    #[test]
    fn continuity_changes_with_every_flush_and_is_none_while_off_or_overdue() {
        let c = serving();
        let first = c.continuity().expect("serving");
        assert_eq!(c.continuity(), Some(first), "nothing happened");
        c.flush(true, "test");
        let flushed = c.continuity().expect("a FLUSHALL leaves it serving");
        assert_ne!(flushed, first, "a FLUSHALL changes it");
        c.flush(false, "test");
        assert_eq!(c.continuity(), None, "feed lost");
        c.enable();
        let back = c.continuity().expect("serving again");
        assert_ne!(back, flushed, "a lost feed changes it");
        c.vouch(Instant::now());
        assert_eq!(c.continuity(), None, "no heartbeat vouches for it");
    }

    #[test]
    fn a_stamp_holds_until_its_card_changes_or_the_feed_is_lost() {
        let c = serving();
        let a = c.stamp("4100000000001").expect("serving");
        let b = c.stamp("4100000000002").expect("serving");
        assert!(c.holds(&a) && c.holds(&b));
        c.card_changed("4100000000001");
        assert!(!c.holds(&a), "its card changed");
        // Unless the two share a bucket, the other card still answers.
        if Coherence::bucket("4100000000001") != Coherence::bucket("4100000000002") {
            assert!(c.holds(&b));
        }
        let a = c.stamp("4100000000001").expect("serving");
        c.flush(true, "test");
        assert!(!c.holds(&a), "a flush ends every stamp");
        let a = c.stamp("4100000000001").expect("serving");
        c.vouch(Instant::now());
        assert!(!c.holds(&a), "overdue: nothing answers");
        assert_eq!(c.stamp("4100000000001"), None);
    }

    #[test]
    fn off_until_enabled_and_always_serves_for_good() {
        let c = Coherence::new();
        assert_eq!(c.stamp("1"), None);
        assert_eq!(c.continuity(), None);
        let always = Coherence::always();
        assert!(always.stamp("1").is_some());
        assert_eq!(always.continuity(), Some(0));
    }
}
