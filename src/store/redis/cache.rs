//! Decoded contacts and index entries kept in the server's memory, in
//! front of Redis, keyed by their Redis key: the lookups that lead a
//! request to its card (a mobile's contact, a contact's card). Cards are
//! not here: the engine's shards own their decoded cards
//! (`engine/owned.rs`), and read the same feed (`store/coherence.rs`).
//! Redis stays the system of record — every write still goes to it as a
//! compare-and-set — and this cache only answers reads while it can prove
//! it is not behind:
//!
//! - Redis tells us (client-side-caching invalidations, `tracking.rs`) when
//!   any key under our prefix changes, whoever changed it; the entry goes.
//! - While that channel is down, or after it was lost (reconnect, failover,
//!   Redis restart), the feed is off and the cache emptied; it serves again
//!   only once tracking is re-established on every node.
//! - A miss reads Redis and fills the entry only if no invalidation of that
//!   key (and no flush) arrived while the read was under way: a read that
//!   raced a write never installs the value the write replaced.
//! - Each completed heartbeat of the channel vouches for it for a while
//!   (`tracking.rs`, `Coherence::vouch`); once that has run out without
//!   another, the cache neither serves nor fills until one completes —
//!   checked on every lookup against the clock.
//!
//! The cache is split into segments (one lock each) so that the HTTP
//! workers reading different keys do not contend on one lock.
//!
//! Why contacts and index entries stay store-side (ADR 0010): they belong
//! to no card's shard (a contact's commands are ordered by its code, a
//! lookup by phone runs before the card is known), nothing is written on
//! what this cache answers (every write reads them from Redis), and they
//! are a small share of what a till reads.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lru::LruCache;
use parking_lot::Mutex;

use crate::domain::Contact;
use crate::metrics as m;
use crate::store::{Coherence, Versioned};

/// What a key holds, decoded.
#[derive(Clone)]
pub enum Cached {
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
    /// Whether anything may be served or filled, and the flushes.
    coherence: Arc<Coherence>,
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
    pub fn new(capacity: usize, segments: usize, coherence: Arc<Coherence>) -> Cache {
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
            coherence,
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
        self.coherence.is_serving()
    }

    /// The feed this cache serves by (the engine's owners read it too).
    pub fn coherence(&self) -> &Arc<Coherence> {
        &self.coherence
    }

    /// A heartbeat proved the invalidation channel caught up: serve until
    /// `until` unless another heartbeat vouches for it again by then.
    pub fn vouch(&self, until: Instant) {
        self.coherence.vouch(until);
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
        if !self.coherence.is_enabled() {
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
        if !self.coherence.is_enabled() {
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
        self.coherence.flush(enabled, reason);
        for seg in &self.segments {
            let mut seg = seg.lock();
            seg.entries.clear();
            seg.bytes = 0;
        }
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.publish();
    }

    /// Serves again: the invalidation channel is up on every node, and the
    /// cache was emptied when it was lost.
    pub fn enable(&self) {
        self.coherence.enable();
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
        let cache = Cache::new(capacity, segments, Arc::new(Coherence::new()));
        cache.vouch(Instant::now() + Duration::from_secs(3600));
        cache.enable();
        cache
    }

    #[test]
    fn disabled_cache_neither_serves_nor_fills() {
        let cache = Cache::new(10, 2, Arc::new(Coherence::new()));
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
