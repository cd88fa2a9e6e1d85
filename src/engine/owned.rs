//! The cards' decoded, versioned state, owned by their shards: one
//! bounded, evicting map per shard, holding only that shard's cards (the
//! same hash as the engine's routing, [`shard_index`]). The store keeps no
//! decoded card; it is persistence plus a coherence feed
//! (`store/coherence.rs`) that says which cards changed since a read began
//! and whether anything was lost. Each entry is two things at once:
//!
//! - **An answer** (balance, calculate, a card found by phone or code):
//!   the state read from the store under a [`Stamp`] taken *before* the
//!   read; it answers only while that stamp holds — the feed serves and is
//!   vouched for, nothing was flushed, and no change of the card was
//!   reported since. A read that raced a write never answers with the value
//!   the write replaced (the stamp taken before it no longer holds once the
//!   write's invalidation arrived; a later read's entry is not replaced by
//!   an earlier read's). Our own write leaves no answer: the next read asks
//!   the store once.
//! - **A write base**: the last version of the card this instance read or
//!   wrote, with the records (purchases, outcomes) it wrote with it, so
//!   that a purchase, a refund or a status change on a card seen before
//!   costs one conditional write and no read first (issue 20, item 2). It
//!   survives the invalidations of our own writes, so it may be behind
//!   another instance's write; it is only ever used for a write that names
//!   its version. A stale base loses the compare-and-set (every write of a
//!   card or of its records raises the card's version), and the command
//!   then reads the store; a refusal or a replay is never answered from it.
//!
//! One hole a version check cannot close: a store that lost writes
//! (restarted from a snapshot without its AOF, failed over to a replica
//! that had not received them, flushed and reloaded) starts versions again
//! from an older one, and a card written back up to the very version
//! remembered here — one write by another instance can do it — passes the
//! check with another state: the write computed here would overwrite that
//! write, and bring back what the store lost (tests/redis/stale_base.rs).
//! No time bound closes it. So every entry carries the store's
//! continuity token (`Coherence::continuity`) taken *before* the read or
//! write it records, and is a base only while the store still answers that
//! very token: on Redis, while the invalidation channel has been up,
//! unflushed, since (a restart, a failover, a lost connection or a
//! `FLUSHALL` changes it). A store that cannot vouch (`None`: Redis with
//! `engine.cache_capacity = 0`, or with its channel down) gets no base:
//! its writes read first. `MAX_AGE` only keeps bases that would rarely
//! still be current from being tried.
//!
//! Bounded: `engine.cache_capacity` cards split over the shards, least
//! recently used evicted; an evicted card costs one read again. The
//! entries and the bytes they hold are counted per shard
//! (`loyalty_owned_cards`, `loyalty_owned_card_bytes`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::mem::size_of;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use crate::domain::{Card, CardNumber};
use crate::metrics as m;
use crate::store::{Coherence, Stamp, Versioned};

/// Records remembered per card (the newest written): a purchase's refunds
/// and cancel usually follow it within a few writes of its card.
const RECORDS_PER_CARD: usize = 4;
/// How long an entry is tried as a write's base (see above).
const MAX_AGE: Duration = Duration::from_secs(30);

/// The store's continuity token when an entry was read or written.
pub(crate) type Continuity = Option<u64>;

/// The shard a key belongs to. `DefaultHasher::new()` has fixed keys: the
/// same card always lands on the same shard, across restarts too. The
/// engine routes commands with it; the owned maps are split with it.
pub(crate) fn shard_index(key: &str, shards: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// The engine's routing key of a card's commands (`Command::ordering_key`).
pub(crate) fn card_key(number: &CardNumber) -> String {
    format!("card:{number}")
}

struct Entry {
    card: Versioned<Card>,
    at: Instant,
    /// The store's continuity token taken before the read or write that
    /// this entry records.
    continuity: u64,
    /// Records as they are at `card.version`, newest last.
    records: Vec<(String, String)>,
    /// The stamp the card was read under: it answers while this holds.
    /// `None`: known from our own write or a lost compare-and-set, a base
    /// only.
    answer: Option<Stamp>,
    /// Estimated heap bytes (`weight`).
    bytes: usize,
}

/// One shard's cards.
struct ShardCards {
    cards: Option<LruCache<CardNumber, Entry>>,
    bytes: usize,
}

impl ShardCards {
    fn pop(&mut self, number: &CardNumber) -> Option<Entry> {
        let old = self.cards.as_mut()?.pop(number)?;
        self.bytes = self.bytes.saturating_sub(old.bytes);
        Some(old)
    }

    fn put(&mut self, number: CardNumber, mut entry: Entry) {
        let Some(cards) = self.cards.as_mut() else {
            return;
        };
        entry.bytes = weight(&number, &entry);
        self.bytes += entry.bytes;
        if let Some((_, evicted)) = cards.push(number, entry) {
            self.bytes = self.bytes.saturating_sub(evicted.bytes);
        }
    }

    fn get(&mut self, number: &CardNumber) -> Option<&Entry> {
        self.cards.as_mut()?.get(number)
    }
}

pub(crate) struct Owned {
    shards: Vec<Mutex<ShardCards>>,
}

impl Owned {
    /// `capacity` cards in all, split evenly over `shards` (0: none kept,
    /// every read and write goes to the store).
    pub(crate) fn new(capacity: usize, shards: usize) -> Owned {
        let shards = shards.max(1);
        let per = NonZeroUsize::new(capacity.div_ceil(shards));
        Owned {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(ShardCards {
                        cards: per.map(LruCache::new),
                        bytes: 0,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, number: &CardNumber) -> &Mutex<ShardCards> {
        &self.shards[shard_index(&card_key(number), self.shards.len())]
    }

    /// The card as the store holds it now, if owned and coherent: read
    /// under a stamp that still holds.
    pub(crate) fn answer(
        &self,
        number: &CardNumber,
        coherence: &Coherence,
    ) -> Option<Versioned<Card>> {
        let mut shard = self.shard(number).lock();
        let hit = shard
            .get(number)
            .filter(|e| e.answer.is_some_and(|s| coherence.holds(&s)))
            .map(|e| e.card.clone());
        m::owned_lookup(hit.is_some());
        hit
    }

    /// Owns what a read of the store answered, read under `stamp` (taken
    /// before the read; `None`: the store could not vouch, and the card is
    /// forgotten). An entry that still answers is not replaced by a read
    /// whose stamp no longer holds (that read began before a change the
    /// entry has already seen), nor by one of a lower version (it read
    /// before a write whose invalidation is still on its way).
    pub(crate) fn filled(
        &self,
        card: &Versioned<Card>,
        stamp: Option<Stamp>,
        coherence: Option<&Coherence>,
    ) {
        let number = &card.value.number;
        let mut shard = self.shard(number).lock();
        let (Some(stamp), Some(coherence)) = (stamp, coherence) else {
            shard.pop(number);
            return;
        };
        let holds = coherence.holds(&stamp);
        // A read whose stamp no longer holds began before a change: it
        // does not replace an entry that still answers. And within one
        // continuity versions only rise, so a read that returns with a
        // lower version than the entry's is the older state, whether the
        // newer one is our own write that raced it or another instance's
        // write that a later read saw while its invalidation was still on
        // its way (two stamps that both hold can straddle it): it never
        // takes the answer or the base back.
        if shard.get(number).is_some_and(|e| {
            (!holds && e.answer.is_some_and(|s| coherence.holds(&s)))
                || (e.continuity == stamp.continuity() && e.card.version > card.version)
        }) {
            return;
        }
        let old = shard.pop(number);
        let continuity = stamp.continuity();
        let records = match old {
            Some(e) if e.card == *card && e.continuity == continuity => e.records,
            _ => Vec::new(),
        };
        shard.put(
            number.clone(),
            Entry {
                card: card.clone(),
                at: Instant::now(),
                continuity,
                records,
                answer: holds.then_some(stamp),
                bytes: 0,
            },
        );
    }

    /// The last version seen of the card, if remembered within the
    /// store's continuity `now` (its token as this write begins): a write
    /// base, possibly behind.
    pub(crate) fn get(&self, number: &CardNumber, now: Continuity) -> Option<Versioned<Card>> {
        let now = now?;
        self.shard(number)
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
        let mut shard = self.shard(number).lock();
        let entry = shard
            .get(number)
            .filter(|e| e.continuity == now && e.at.elapsed() < MAX_AGE)?;
        let (_, value) = entry.records.iter().rev().find(|(k, _)| k == key)?;
        Some((entry.card.clone(), value.clone()))
    }

    /// Remembers a version read (or handed back by a lost write) by a call
    /// that began at continuity `since`, as a base only: the latest word,
    /// even if lower than the one remembered (a store restored or flushed
    /// starts versions again). Its records are known only if this very
    /// version was, within the same continuity. A read the store could not
    /// vouch for drops what was remembered.
    pub(crate) fn saw(&self, card: &Versioned<Card>, since: Continuity) {
        let number = &card.value.number;
        let mut shard = self.shard(number).lock();
        let old = shard.pop(number);
        let Some(continuity) = since else { return };
        // The same state again: what was known of it stays true, and so
        // does its answer.
        let (records, answer) = match old {
            Some(e) if e.card == *card && e.continuity == continuity => (e.records, e.answer),
            _ => (Vec::new(), None),
        };
        shard.put(
            number.clone(),
            Entry {
                card: card.clone(),
                at: Instant::now(),
                continuity,
                records,
                answer,
                bytes: 0,
            },
        );
    }

    /// Remembers this instance's write of `next` over version `from`, with
    /// the records it wrote, by a call that began at continuity `since`.
    /// Records known at `from` (within the same continuity) are still as
    /// they were at `from + 1` (this write changed only those it names).
    /// No answer: the write's own invalidation is still to come.
    pub(crate) fn wrote(
        &self,
        next: &Card,
        from: u64,
        written: &[(&str, &str)],
        since: Continuity,
    ) {
        let mut shard = self.shard(&next.number).lock();
        let old = shard.pop(&next.number);
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
        shard.put(
            next.number.clone(),
            Entry {
                card: Versioned {
                    value: next.clone(),
                    version: from + 1,
                },
                at: Instant::now(),
                continuity,
                records,
                answer: None,
                bytes: 0,
            },
        );
    }

    /// Cards owned and their estimated heap bytes, per shard.
    pub(crate) fn sizes(&self) -> Vec<(usize, usize)> {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                (s.cards.as_ref().map_or(0, LruCache::len), s.bytes)
            })
            .collect()
    }
}

/// An estimate of the heap one owned card holds (the allocator's own
/// overhead aside): the map's slot, the decoded card's heap parts, and
/// the records kept with it. What the bytes gauge adds up.
fn weight(number: &CardNumber, e: &Entry) -> usize {
    let c = &e.card.value;
    let strings = |s: &str| s.len();
    // The LRU's node: key, value and its two links, plus the hash table's
    // pointer to it.
    size_of::<CardNumber>()
        + size_of::<Entry>()
        + 3 * size_of::<usize>()
        + strings(number.as_str())
        + strings(c.number.as_str())
        + c.contact.as_ref().map_or(0, |k| strings(k.as_str()))
        + c.block.as_ref().map_or(0, |b| {
            size_of::<crate::domain::BlockInfo>()
                + b.login.len()
                + b.reason_name.as_ref().map_or(0, String::len)
        })
        + c.replaced_by.as_ref().map_or(0, |n| strings(n.as_str()))
        + c.replaces.as_ref().map_or(0, |n| strings(n.as_str()))
        + std::mem::size_of_val(c.ledger.lots.as_slice())
        + std::mem::size_of_val(c.transfer_out.as_slice())
        + c.received_from.len() * size_of::<CardNumber>()
        + c.received_from
            .iter()
            .map(|n| n.as_str().len())
            .sum::<usize>()
        + std::mem::size_of_val(c.holds.as_slice())
        + e.records
            .iter()
            .map(|(k, v)| 2 * size_of::<String>() + k.len() + v.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CardType, Category};

    fn card(n: u64, version: u64) -> Versioned<Card> {
        Versioned {
            value: Card::new(
                CardNumber::from_trusted(format!("41{n:011}")),
                Category::Plastic,
                CardType::Bonus,
            ),
            version,
        }
    }

    fn serving() -> Coherence {
        let c = Coherence::new();
        c.vouch(Instant::now() + Duration::from_secs(3600));
        c.enable();
        c
    }

    #[test]
    fn an_entry_is_a_base_only_within_the_continuity_it_was_seen_in() {
        let seen = Owned::new(100, 4);
        let c = card(1, 7);
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
        seen.saw(&card(1, 3), None);
        assert_eq!(seen.get(&number, Some(2)), None);
    }

    #[test]
    fn answers_while_its_stamp_holds_and_a_racing_read_does_not_replace_a_newer_one() {
        let feed = serving();
        let owned = Owned::new(100, 4);
        let old = card(2, 1);
        let number = old.value.number.clone();
        let early = feed.stamp(number.as_str());
        // A write by anyone is reported, then a later read fills.
        feed.card_changed(number.as_str());
        let new = card(2, 2);
        let late = feed.stamp(number.as_str());
        owned.filled(&new, late, Some(&feed));
        assert_eq!(owned.answer(&number, &feed), Some(new.clone()));
        // The read that began before the write comes back last.
        owned.filled(&old, early, Some(&feed));
        assert_eq!(owned.answer(&number, &feed), Some(new.clone()));
        // Another change: no answer, the base stays.
        feed.card_changed(number.as_str());
        assert_eq!(owned.answer(&number, &feed), None);
        assert_eq!(owned.get(&number, feed.continuity()), Some(new.clone()));
        // Our own write leaves a base and no answer.
        let racing = feed.stamp(number.as_str());
        owned.wrote(&new.value, 2, &[], feed.continuity());
        feed.card_changed(number.as_str());
        assert_eq!(owned.answer(&number, &feed), None);
        let version = |o: &Owned| o.get(&number, feed.continuity()).map(|c| c.version);
        assert_eq!(version(&owned), Some(3));
        // A read that began before it and comes back after it keeps the
        // newer base.
        owned.filled(&new, racing, Some(&feed));
        assert_eq!(version(&owned), Some(3));
        // A flush ends both.
        feed.flush(true, "test");
        assert_eq!(owned.get(&number, feed.continuity()), None);
    }

    #[test]
    fn capacity_splits_over_shards_evicts_and_counts_bytes() {
        let feed = serving();
        let owned = Owned::new(64, 4);
        for n in 0..1_000 {
            let c = card(n, 1);
            owned.filled(&c, feed.stamp(c.value.number.as_str()), Some(&feed));
        }
        let sizes = owned.sizes();
        assert_eq!(sizes.len(), 4);
        assert!(sizes.iter().all(|(n, _)| *n == 16), "{sizes:?}");
        let (entries, bytes) = sizes
            .iter()
            .fold((0, 0), |(n, b), (sn, sb)| (n + sn, b + sb));
        assert_eq!(entries, 64);
        assert!(bytes > 64 * 100, "{bytes}");
        // An evicted card is read again: it answers nothing now.
        let first = card(0, 1);
        assert_eq!(owned.answer(&first.value.number, &feed), None);
        let none = Owned::new(0, 4);
        none.filled(&first, feed.stamp(first.value.number.as_str()), Some(&feed));
        assert_eq!(none.answer(&first.value.number, &feed), None);
        assert_eq!(none.sizes(), vec![(0, 0); 4]);
    }

    /// The bytes one owned card holds, as the gauge reports them, for a
    /// till's typical card: bound to a contact, two lots, the last
    /// purchase's outcome kept with it (the number in ADR 0001).
    #[test]
    fn bytes_per_owned_card() {
        use crate::domain::ledger::{Lot, LotSource};
        use crate::domain::{Amount, BonusType, ContactCode};
        let feed = serving();
        const N: u64 = 10_000;
        // Room to spare: the shards do not fill evenly.
        let owned = Owned::new(2 * N as usize, 16);
        let day = time::Date::from_calendar_date(2026, time::Month::December, 7).expect("a date");
        let lot = Lot {
            bonus_type: BonusType::ALL[0],
            amount: Amount::from_hundredths(1_000).expect("an amount"),
            active_from: day,
            expires: Some(day),
            source: LotSource::Purchase,
        };
        for n in 0..N {
            let mut c = card(n, 5);
            c.value.contact = Some(ContactCode::from_trusted(format!("C-{n:08}")));
            c.value.ledger.lots = vec![lot.clone(), lot.clone()];
            let outcome = format!("{{\"p\":\"P-{n:012}\",\"a\":1000,\"b\":0,\"t\":1765000000000}}");
            owned.wrote(
                &c.value,
                4,
                &[(&format!("purchase:P-{n:012}"), &outcome)],
                feed.continuity(),
            );
        }
        let (entries, bytes) = owned
            .sizes()
            .iter()
            .fold((0, 0), |(n, b), (sn, sb)| (n + sn, b + sb));
        assert_eq!(entries, N as usize);
        let per = bytes / entries;
        println!("owned cards: {entries}, estimated heap: {bytes} B, {per} B per card");
        assert!((200..2_000).contains(&per), "{per} B per card");
        // The same cards read for a balance only: no record kept.
        let read = Owned::new(2 * N as usize, 16);
        for n in 0..N {
            let mut c = card(n, 5);
            c.value.contact = Some(ContactCode::from_trusted(format!("C-{n:08}")));
            c.value.ledger.lots = vec![lot.clone(), lot.clone()];
            read.filled(&c, feed.stamp(c.value.number.as_str()), Some(&feed));
        }
        let bytes: usize = read.sizes().iter().map(|(_, b)| b).sum();
        println!("read for a balance only: {} B per card", bytes / N as usize);
    }
}
