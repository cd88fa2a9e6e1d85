//! Decoded records kept in the server's memory, in front of Redis: cards,
//! contacts and index entries, keyed by their Redis key. Redis stays the
//! system of record — every write still goes to it as a compare-and-set —
//! and this cache only answers reads while it can prove it is not behind:
//!
//! - Redis tells us (client-side-caching invalidations, `tracking.rs`) when
//!   any key under our prefix changes, whoever changed it; the entry goes.
//! - While that channel is down, or after it was lost (reconnect, failover,
//!   Redis restart), the cache is disabled and emptied; it serves again only
//!   once tracking is re-established on every node.
//! - A miss reads Redis and fills the entry only if no invalidation of that
//!   key (and no flush) arrived while the read was under way: a read that
//!   raced a write never installs the value the write replaced.
//! - Each completed heartbeat of the channel vouches for it for a while
//!   (`tracking.rs`); once that has run out without another, the cache
//!   neither serves nor fills until one completes — checked on every
//!   lookup against the clock, so it holds even if the tracking task
//!   itself is held up.
//!
//! The cache is split into segments (one lock each) so that the HTTP
//! workers reading different cards do not contend on one lock.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use lru::LruCache;
use parking_lot::Mutex;

use crate::domain::{Card, Contact};
use crate::metrics as m;
use crate::store::Versioned;

/// What a key holds, decoded.
#[derive(Clone)]
pub enum Cached {
    Card(Option<Versioned<Card>>),
    Contact(Versioned<Option<Contact>>),
    /// An index entry: its owner, its age when read, and when it was read
    /// (its age now is that age plus the time since).
    Index(Option<(String, i64)>, Instant),
}

enum Slot {
    Filled(Box<Cached>, usize),
    /// A miss is reading Redis; the token tells its fill apart from a later
    /// one that replaced it.
    Pending(u64),
}

struct Segment {
    entries: LruCache<String, Slot>,
    bytes: usize,
}

pub struct Cache {
    segments: Vec<Mutex<Segment>>,
    /// False while the invalidation channel is not (yet, or no longer)
    /// established: nothing is served or filled then.
    enabled: AtomicBool,
    /// Until when (ms since `epoch`) the last heartbeat vouches for the
    /// invalidation channel: past it, nothing is served or filled.
    vouched_until: AtomicU64,
    /// Bumped by every flush: one value spans a stretch in which the
    /// channel was up and Redis lost nothing (`Cache::continuity`).
    generation: AtomicU64,
    epoch: Instant,
    tokens: AtomicU64,
    entries: AtomicUsize,
    bytes: AtomicUsize,
}

/// A miss in progress: fill it with what Redis answered.
pub struct Fill {
    key: String,
    token: u64,
}

impl Cache {
    pub fn new(capacity: usize, segments: usize) -> Cache {
        let segments = segments.clamp(1, capacity.max(1));
        let per_segment = NonZeroUsize::new((capacity / segments).max(1)).expect("at least one");
        Cache {
            segments: (0..segments)
                .map(|_| {
                    Mutex::new(Segment {
                        entries: LruCache::new(per_segment),
                        bytes: 0,
                    })
                })
                .collect(),
            enabled: AtomicBool::new(false),
            vouched_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            epoch: Instant::now(),
            tokens: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn segment(&self, key: &str) -> &Mutex<Segment> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.segments[(h.finish() % self.segments.len() as u64) as usize]
    }

    /// Serving: enabled, and a heartbeat vouches for the channel now.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire) && !self.is_overdue()
    }

    /// The generation, while the cache serves: the same value later means
    /// the channel stayed up and unflushed in between, so Redis restarted,
    /// failed over or flushed in between would have changed it (the engine's
    /// write base, `engine/last_seen.rs`, leans on it). `None` while the
    /// channel is down or overdue. Read twice around the check, so that a
    /// flush under way between them is not missed.
    pub fn continuity(&self) -> Option<u64> {
        let before = self.generation.load(Ordering::SeqCst);
        if !self.is_enabled() {
            return None;
        }
        (self.generation.load(Ordering::SeqCst) == before).then_some(before)
    }

    /// Has the last heartbeat's word run out without another?
    fn is_overdue(&self) -> bool {
        self.ms(Instant::now()) >= self.vouched_until.load(Ordering::Acquire)
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A heartbeat proved the invalidation channel caught up: serve until
    /// `until` unless another heartbeat vouches for it again by then.
    pub fn vouch(&self, until: Instant) {
        self.vouched_until.store(self.ms(until), Ordering::Release);
    }

    /// The cached value, or a ticket to fill it after reading Redis (`None`
    /// when the cache is not serving: read Redis and keep nothing).
    pub fn lookup(&self, key: &str) -> Result<Cached, Option<Fill>> {
        if !self.is_enabled() {
            return Err(None);
        }
        let mut seg = self.segment(key).lock();
        // Again under the lock: a flush turns the flag off before it clears
        // the segments, so a lookup that passed the first check and waited
        // for this lock while the flush cleared it must not leave a ticket
        // (or read an entry) in a cache that is off.
        if !self.enabled.load(Ordering::Acquire) {
            return Err(None);
        }
        if let Some(Slot::Filled(value, _)) = seg.entries.get(key) {
            m::cache_lookup(true);
            return Ok(Cached::clone(value));
        }
        m::cache_lookup(false);
        let token = self.tokens.fetch_add(1, Ordering::Relaxed) + 1;
        let old = seg.entries.push(key.to_owned(), Slot::Pending(token));
        self.account_removed(&mut seg, old.map(|(_, slot)| slot));
        Err(Some(Fill {
            key: key.to_owned(),
            token,
        }))
    }

    /// Installs what a miss read — unless the key was invalidated (or the
    /// cache flushed or disabled) since the miss began.
    pub fn fill(&self, fill: Fill, value: Cached) {
        if !self.is_enabled() {
            return;
        }
        let mut seg = self.segment(&fill.key).lock();
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        match seg.entries.peek(&fill.key) {
            Some(Slot::Pending(t)) if *t == fill.token => {}
            _ => return,
        }
        let size = fill.key.len() + weight(&value);
        let old = seg
            .entries
            .push(fill.key, Slot::Filled(Box::new(value), size));
        seg.bytes += size;
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.account_removed(&mut seg, old.map(|(_, slot)| slot));
    }

    /// Drops a key (an invalidation, or our own write).
    pub fn invalidate(&self, key: &str) {
        let mut seg = self.segment(key).lock();
        let old = seg.entries.pop(key);
        self.account_removed(&mut seg, old);
    }

    /// Drops everything; with `enabled == false` also stops serving and
    /// filling until [`Cache::enable`]. `reason` labels the metric.
    pub fn flush(&self, enabled: bool, reason: &'static str) {
        if !enabled {
            self.enabled.store(false, Ordering::Release);
            m::cache_serving(false);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        for seg in &self.segments {
            let mut seg = seg.lock();
            seg.entries.clear();
            seg.bytes = 0;
        }
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        m::cache_flushed(reason);
        self.publish();
    }

    /// Serves again: the invalidation channel is up on every node, and the
    /// cache was emptied when it was lost.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
        m::cache_serving(true);
    }

    fn account_removed(&self, seg: &mut Segment, old: Option<Slot>) {
        if let Some(Slot::Filled(_, size)) = old {
            seg.bytes = seg.bytes.saturating_sub(size);
            let _ = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(size))
                });
            let _ = self
                .entries
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    fn publish(&self) {
        m::cache_size(
            self.entries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        );
    }

    /// Entries and estimated bytes held now (also set on the gauges: the
    /// tracker calls this every second rather than every fill).
    pub fn size(&self) -> (usize, usize) {
        self.publish();
        (
            self.entries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// An estimate of the heap a decoded value holds (the allocator's own
/// overhead aside): what the `bytes` gauge adds up.
fn weight(value: &Cached) -> usize {
    use std::mem::size_of;
    let slot = size_of::<Slot>() + size_of::<Cached>() + size_of::<String>();
    slot + match value {
        Cached::Card(None) => 0,
        Cached::Card(Some(card)) => {
            let c = &card.value;
            c.number.as_str().len()
                + c.contact.as_ref().map_or(0, |k| k.as_str().len())
                + c.block.as_ref().map_or(0, |b| {
                    size_of::<crate::domain::BlockInfo>()
                        + b.login.len()
                        + b.reason_name.as_ref().map_or(0, String::len)
                })
                + c.replaced_by.as_ref().map_or(0, |n| n.as_str().len())
                + c.replaces.as_ref().map_or(0, |n| n.as_str().len())
                + lots_weight(&c.ledger.lots)
                + lots_weight(&c.transfer_out)
                + c.received_from.len() * size_of::<crate::domain::CardNumber>()
        }
        Cached::Contact(c) => c.value.as_ref().map_or(0, |c| {
            c.code.as_str().len()
                + c.name.len()
                + c.mobile.as_ref().map_or(0, |m| m.as_str().len())
                + c.email.len()
                + c.birth_date.len()
                + c.gender.len()
                + c.city.len()
                + c.mobile_claim.as_ref().map_or(0, String::len)
        }),
        Cached::Index(owner, _) => owner.as_ref().map_or(0, |(o, _)| o.len()),
    }
}

fn lots_weight(lots: &[crate::domain::Lot]) -> usize {
    std::mem::size_of_val(lots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn idx(owner: &str) -> Cached {
        Cached::Index(Some((owner.into(), 0)), Instant::now())
    }

    fn owner(c: Cached) -> String {
        match c {
            Cached::Index(Some((o, _)), _) => o,
            _ => panic!("not an index entry"),
        }
    }

    /// A cache whose channel a heartbeat vouches for, for long enough.
    fn serving(capacity: usize, segments: usize) -> Cache {
        let cache = Cache::new(capacity, segments);
        cache.vouch(Instant::now() + Duration::from_secs(3600));
        cache.enable();
        cache
    }

    #[test]
    fn continuity_changes_with_every_flush_and_is_none_while_off_or_overdue() {
        let cache = serving(10, 2);
        let first = cache.continuity().expect("serving");
        assert_eq!(cache.continuity(), Some(first), "nothing happened");
        cache.flush(true, "test");
        let flushed = cache.continuity().expect("a FLUSHALL leaves it serving");
        assert_ne!(flushed, first, "a FLUSHALL changes it");
        cache.flush(false, "test");
        assert_eq!(cache.continuity(), None, "channel lost");
        cache.enable();
        let back = cache.continuity().expect("serving again");
        assert_ne!(back, flushed, "a lost channel changes it");
        cache.vouch(Instant::now());
        assert_eq!(cache.continuity(), None, "no heartbeat vouches for it");
    }

    #[test]
    fn disabled_cache_neither_serves_nor_fills() {
        let cache = Cache::new(10, 2);
        assert!(matches!(cache.lookup("k"), Err(None)));
        cache.vouch(Instant::now() + Duration::from_secs(3600));
        cache.enable();
        let Err(Some(fill)) = cache.lookup("k") else {
            panic!("a miss")
        };
        cache.flush(false, "test");
        cache.fill(fill, idx("a"));
        cache.enable();
        assert!(
            cache.lookup("k").is_err(),
            "a fill across a flush is dropped"
        );
    }

    #[test]
    fn a_miss_that_raced_an_invalidation_installs_nothing() {
        let cache = serving(10, 1);
        let Err(Some(fill)) = cache.lookup("k") else {
            panic!("a miss")
        };
        cache.invalidate("k");
        cache.fill(fill, idx("old"));
        assert!(cache.lookup("k").is_err());
    }

    #[test]
    fn a_later_miss_wins_over_an_earlier_one() {
        let cache = serving(10, 1);
        let Err(Some(first)) = cache.lookup("k") else {
            panic!("a miss")
        };
        cache.invalidate("k");
        let Err(Some(second)) = cache.lookup("k") else {
            panic!("a miss")
        };
        cache.fill(first, idx("old"));
        cache.fill(second, idx("new"));
        assert_eq!(owner(cache.lookup("k").ok().expect("a hit")), "new");
    }

    #[test]
    fn capacity_bounds_entries_and_bytes_follow() {
        let cache = serving(4, 1);
        for i in 0..10 {
            let key = format!("k{i}");
            let Err(Some(fill)) = cache.lookup(&key) else {
                panic!("a miss")
            };
            cache.fill(fill, idx("owner"));
        }
        let (entries, bytes) = cache.size();
        assert_eq!(entries, 4);
        assert!(bytes > 0);
        cache.flush(true, "test");
        assert_eq!(cache.size(), (0, 0));
        assert!(cache.is_enabled());
    }

    #[test]
    fn an_overdue_heartbeat_stops_serving_and_filling_until_the_next() {
        let cache = serving(10, 1);
        let Err(Some(fill)) = cache.lookup("k") else {
            panic!("a miss")
        };
        cache.fill(fill, idx("a"));
        assert!(cache.lookup("k").is_ok(), "served while vouched for");
        // The heartbeat's word runs out: nothing is served, no ticket given.
        cache.vouch(Instant::now());
        assert!(!cache.is_enabled());
        assert!(matches!(cache.lookup("k"), Err(None)));
        // The next heartbeat: served again (the channel was slow, not lost).
        cache.vouch(Instant::now() + Duration::from_secs(3600));
        assert_eq!(owner(cache.lookup("k").ok().expect("a hit")), "a");
    }
}
