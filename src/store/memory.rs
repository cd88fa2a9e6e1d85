//! The embedded store: everything in process memory, nothing survives a
//! restart. Each write takes the lock of the one map it touches, which makes
//! every conditional write of the trait atomic. The maps are ordered so
//! that an export can walk them page by page, resuming after the last key
//! it saw, without holding a lock between pages.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::dump::{cursor, split_cursor, PHASES};
use super::events::{ChangeEvent, EventLog};
use super::{
    contact_of_slot, BulkStore, CardStore, Coherence, ContactStore, HealthStore, RecordStore,
};
use super::{
    CardLoad, CardRecordWrite, Cas, Claim, DumpItem, DumpPage, Expiry, HistoryPage, Index,
    PurchaseCommit, PurchaseWrite, RecordRead, StoreError, Versioned,
};
use crate::domain::{Card, CardNumber, CardStatus, Contact, ContactCode, HistoryEntry};

struct CardRecord {
    card: Card,
    version: u64,
    history: Vec<HistoryEntry>,
    /// key → (value, expires at)
    records: HashMap<String, (String, Instant)>,
}

#[derive(Default)]
pub struct MemoryStore {
    cards: RwLock<BTreeMap<CardNumber, CardRecord>>,
    contacts: RwLock<BTreeMap<ContactCode, Versioned<Option<Contact>>>>,
    mobiles: RwLock<BTreeMap<String, Stamped>>,
    contact_cards: RwLock<BTreeMap<String, Stamped>>,
    purchases: RwLock<BTreeMap<String, Stamped>>,
    /// The change stream, in process (docs/events.md): bounded, newest
    /// last. Appended under the cards' lock, in the same critical section
    /// as the change. There is no archive for it: the archive reads the
    /// Redis streams only.
    events: parking_lot::Mutex<VecDeque<ChangeEvent>>,
    event_log: EventLog,
    /// How long a PurchaseId stays bound (`None`: for good).
    purchase_index_ttl: Option<Duration>,
    /// Index entries that expire, soonest first (one TTL, so claim order
    /// is expiry order): dropped as they expire, so that the map does not
    /// keep every PurchaseId ever seen.
    expiring: parking_lot::Mutex<VecDeque<(Instant, String)>>,
    /// The feed the engine's owners of decoded cards read: this store sees
    /// every write itself, so it is always on, and each change of a card
    /// is reported while the cards' lock is held (a read that began before
    /// it can no longer answer). The same owner code runs on memory as on
    /// Redis, with the same invalidation protocol.
    coherence: Feed,
}

struct Feed(Coherence);

impl Default for Feed {
    fn default() -> Feed {
        Feed(Coherence::always())
    }
}

impl CardRecord {
    fn new(card: Card) -> CardRecord {
        CardRecord {
            card,
            version: 1,
            history: Vec::new(),
            records: HashMap::new(),
        }
    }
}

/// An index entry: its owner and when it was set (a monotonic clock, so
/// that a step of the wall clock cannot age a claim), and when it expires.
struct Stamped {
    owner: String,
    since: Instant,
    until: Option<Instant>,
}

impl Stamped {
    fn live(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

impl Stamped {
    fn claim(&self) -> Claim {
        Claim {
            owner: self.owner.clone(),
            age_ms: i64::try_from(self.since.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// `now + d`; a retention too large to represent means "keep".
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400))
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Keeps the newest `events.max_len` changes in process.
    pub fn with_event_log(mut self, events: EventLog) -> MemoryStore {
        self.event_log = events;
        self
    }

    /// Lets a PurchaseId's index entry expire this long after its claim.
    pub fn with_purchase_index_ttl(mut self, ttl: Duration) -> MemoryStore {
        self.purchase_index_ttl = Some(ttl);
        self
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.events.lock().iter().cloned().collect()
    }

    fn append_event(
        &self,
        event: impl FnOnce() -> Result<ChangeEvent, StoreError>,
    ) -> Result<(), StoreError> {
        if !self.event_log.enabled() {
            return Ok(());
        }
        let event = event()?;
        let mut log = self.events.lock();
        log.push_back(event);
        let cap = usize::try_from(self.event_log.max_len).unwrap_or(usize::MAX);
        while log.len() > cap {
            log.pop_front();
        }
        Ok(())
    }

    /// `update_card_with` on a card at the expected version (the caller
    /// holds the cards' lock and checked it).
    fn write_card(
        &self,
        record: &mut CardRecord,
        card: &Card,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        let now = Instant::now();
        record.records.retain(|_, (_, until)| *until > now);
        let refused = records.iter().any(|w| {
            let exists = record.records.contains_key(&w.key);
            (w.create_only && exists) || (w.expiry == Expiry::Keep && !exists)
        });
        if refused {
            return Ok(Cas::Conflict);
        }
        if let Some(entry) = entry {
            let seq = record.history.len() as u64;
            self.append_event(|| {
                Ok(ChangeEvent::history(
                    card.number.as_str(),
                    seq,
                    json(entry)?,
                ))
            })?;
            record.history.push(entry.clone());
        }
        record.card = card.clone();
        record.version += 1;
        self.coherence.0.card_changed(card.number.as_str());
        let retention = later(now, Duration::from_secs(ttl_secs));
        for w in records {
            let until = match w.expiry {
                Expiry::Retention => retention,
                Expiry::Keep => record.records.get(&w.key).map_or(retention, |r| r.1),
                Expiry::In(ms) => later(now, Duration::from_millis(ms.max(0) as u64)),
            };
            record
                .records
                .insert(w.key.clone(), (w.value.clone(), until));
        }
        Ok(Cas::Applied)
    }

    /// Sets an index entry (the caller holds the index's lock and checked
    /// its current owner), dropping the expired entries.
    fn put_claim(
        &self,
        map: &mut BTreeMap<String, Stamped>,
        index: Index,
        key: &str,
        owner: &str,
        now: Instant,
    ) {
        let ttl = match index {
            Index::Purchase => self.purchase_index_ttl,
            Index::Mobile | Index::ContactCard => None,
        };
        let until = ttl.map(|ttl| later(now, ttl));
        map.insert(
            key.to_owned(),
            Stamped {
                owner: owner.to_owned(),
                since: now,
                until,
            },
        );
        if let Some(until) = until {
            let mut expiring = self.expiring.lock();
            expiring.push_back((until, key.to_owned()));
            while let Some((at, _)) = expiring.front() {
                if *at > now {
                    break;
                }
                if let Some((at, key)) = expiring.pop_front() {
                    // Only if not claimed again since.
                    if map.get(&key).is_some_and(|s| s.until == Some(at)) {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    fn index(&self, index: Index) -> &RwLock<BTreeMap<String, Stamped>> {
        match index {
            Index::Mobile => &self.mobiles,
            Index::ContactCard => &self.contact_cards,
            Index::Purchase => &self.purchases,
        }
    }
}

/// Keys after `after` (all when empty), at most `count` of them.
fn page_after<'m, K: Ord + Borrow<str> + 'm, V>(
    map: &'m BTreeMap<K, V>,
    after: &str,
    count: usize,
) -> impl Iterator<Item = (&'m K, &'m V)> {
    let from = if after.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(after)
    };
    map.range::<str, _>((from, Bound::Unbounded)).take(count)
}

/// What a record has left; `None` for one restored as never expiring
/// (kept for a century here, which is what `later` caps "forever" at).
fn ttl_of(now: Instant, until: Instant) -> Option<i64> {
    let left = until.saturating_duration_since(now);
    (left < Duration::from_secs(50 * 365 * 86_400))
        .then(|| i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
}

impl MemoryStore {
    /// One page of phase `phase`, resuming after `after`; the last key it
    /// covered (`None`: the phase is done).
    fn dump_phase(
        &self,
        phase: usize,
        after: &str,
        count: usize,
        items: &mut Vec<DumpItem>,
    ) -> Option<String> {
        let now = Instant::now();
        let mut last = None;
        let mut seen = 0;
        match PHASES[phase] {
            "cards" | "records" => {
                let cards = self.cards.read();
                for (number, r) in page_after(&cards, after, count) {
                    seen += 1;
                    last = Some(number.as_str().to_owned());
                    if phase == 0 {
                        items.push(DumpItem::Card {
                            card: r.card.clone(),
                            history: r.history.clone(),
                        });
                        continue;
                    }
                    let mut records: Vec<_> = r
                        .records
                        .iter()
                        .filter(|(_, (_, until))| *until > now)
                        .collect();
                    records.sort_by(|a, b| a.0.cmp(b.0));
                    items.extend(records.into_iter().map(|(key, (value, until))| {
                        DumpItem::Record {
                            number: number.clone(),
                            key: key.clone(),
                            value: value.clone(),
                            ttl_ms: ttl_of(now, *until),
                        }
                    }));
                }
            }
            "contacts" => {
                let contacts = self.contacts.read();
                for (code, slot) in page_after(&contacts, after, count) {
                    seen += 1;
                    last = Some(code.as_str().to_owned());
                    // A fenced, never-written contact is no record.
                    if let Some(contact) = &slot.value {
                        items.push(DumpItem::Contact(contact.clone()));
                    }
                }
            }
            name => {
                let index = Index::from_name(name)?;
                let map = self.index(index).read();
                for (key, stamped) in page_after(&map, after, count) {
                    seen += 1;
                    last = Some(key.clone());
                    items.push(DumpItem::Index {
                        index,
                        key: key.clone(),
                        owner: stamped.owner.clone(),
                    });
                }
            }
        }
        if seen < count {
            None
        } else {
            last
        }
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    /// No replicas: everything written is all there is.
    async fn replicated(&self, _number: &CardNumber) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// This process's memory loses nothing while the process lives: its
    /// continuity never changes.
    fn coherence(&self) -> Option<&Coherence> {
        Some(&self.coherence.0)
    }
}

#[async_trait]
impl CardStore for MemoryStore {
    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        Ok(self.cards.read().get(number).map(|r| Versioned {
            value: r.card.clone(),
            version: r.version,
        }))
    }

    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.update_card_with(card, expected_version, Some(entry), &[], 0)
            .await
    }

    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        let mut map = self.cards.write();
        match map.get_mut(&card.number) {
            Some(record) if record.version == expected_version => {
                self.write_card(record, card, entry, records, ttl_secs)
            }
            _ => Ok(Cas::Conflict),
        }
    }

    async fn commit_purchase(&self, w: &PurchaseWrite<'_>) -> Result<PurchaseCommit, StoreError> {
        // Cards, then the PurchaseId index: the one place that holds two
        // of the store's locks, in that order, so that the whole purchase
        // is one critical section as it is one script on Redis.
        let mut cards = self.cards.write();
        let now = Instant::now();
        let record = cards.get_mut(&w.card.number);
        if let Some((value, until)) = record
            .as_ref()
            .and_then(|r| r.records.get(&w.outcome.key))
            .filter(|(_, until)| *until > now)
        {
            return Ok(PurchaseCommit::Stored(RecordRead {
                value: value.clone(),
                ttl_ms: ttl_of(now, *until),
            }));
        }
        let mut index = self.purchases.write();
        let claim = index.get(w.purchase_id).filter(|s| s.live(now));
        if claim.map(|c| c.owner.as_str()) != w.claim_expected {
            return Ok(PurchaseCommit::Claimed(claim.map(Stamped::claim)));
        }
        let record = match record {
            Some(r) if r.version == w.expected_version => r,
            other => {
                return Ok(PurchaseCommit::Conflict {
                    current: other.map(|r| {
                        Box::new(Versioned {
                            value: r.card.clone(),
                            version: r.version,
                        })
                    }),
                    claim_held: false,
                })
            }
        };
        let written = self.write_card(
            record,
            w.card,
            Some(w.entry),
            std::slice::from_ref(w.outcome),
            w.ttl_secs,
        )?;
        if written != Cas::Applied {
            // The outcome was checked above: only a record to keep could
            // refuse, and a purchase writes none.
            return Ok(PurchaseCommit::Conflict {
                current: None,
                claim_held: false,
            });
        }
        self.put_claim(&mut index, Index::Purchase, w.purchase_id, w.owner, now);
        Ok(PurchaseCommit::Applied)
    }

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let map = self.cards.read();
        let Some(record) = map.get(number) else {
            return Ok(HistoryPage {
                entries: Vec::new(),
                next: None,
                archived_below: 0,
            });
        };
        let end = before.map_or(record.history.len(), |b| {
            (b as usize).min(record.history.len())
        });
        let start = end.saturating_sub(limit);
        let entries = (start..end)
            .rev()
            .map(|i| (i as u64, record.history[i].clone()))
            .collect();
        // Nothing is ever archived out of the memory store.
        Ok(HistoryPage {
            entries,
            next: (start > 0).then_some(start as u64),
            archived_below: 0,
        })
    }
}

#[async_trait]
impl RecordStore for MemoryStore {
    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let map = self.cards.read();
        Ok(map
            .get(number)
            .and_then(|r| r.records.get(key))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(value, _)| value.clone()))
    }

    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        let map = self.cards.read();
        let Some(r) = map.get(number) else {
            return Ok((None, None));
        };
        let now = Instant::now();
        let record = r
            .records
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(value, until)| RecordRead {
                value: value.clone(),
                ttl_ms: Some(i64::try_from((*until - now).as_millis()).unwrap_or(i64::MAX)),
            });
        Ok((
            Some(Versioned {
                value: r.card.clone(),
                version: r.version,
            }),
            record,
        ))
    }
}

#[async_trait]
impl ContactStore for MemoryStore {
    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        Ok(contact_of_slot(self.get_contact_slot(code).await?))
    }

    /// No cache: the cached read is the read.
    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.get_contact(code).await
    }

    /// No cache: the cached read is the read.
    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.index_get(index, key).await
    }

    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        Ok(self
            .contacts
            .read()
            .get(code)
            .cloned()
            .unwrap_or(Versioned {
                value: None,
                version: 0,
            }))
    }

    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        let mut map = self.contacts.write();
        let current = map.get(&contact.code).map_or(0, |c| c.version);
        if current != expected_version {
            return Ok(Cas::Conflict);
        }
        map.insert(
            contact.code.clone(),
            Versioned {
                value: Some(contact.clone()),
                version: expected_version + 1,
            },
        );
        Ok(Cas::Applied)
    }

    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        let mut map = self.contacts.write();
        let slot = map.entry(code.clone()).or_insert(Versioned {
            value: None,
            version: 0,
        });
        if slot.version != expected_version {
            return Ok(Cas::Conflict);
        }
        slot.version += 1;
        Ok(Cas::Applied)
    }

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        let now = Instant::now();
        Ok(self
            .index(index)
            .read()
            .get(key)
            .filter(|s| s.live(now))
            .map(Stamped::claim))
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        let mut map = self.index(index).write();
        let now = Instant::now();
        let current = map.get(key).filter(|s| s.live(now));
        if current.map(|c| c.owner.as_str()) != expected {
            return Ok(Err(current.map(Stamped::claim)));
        }
        self.put_claim(&mut map, index, key, owner, now);
        Ok(Ok(()))
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut map = self.index(index).write();
        if map
            .get(key)
            .is_some_and(|c| c.owner == owner || !c.live(Instant::now()))
        {
            map.remove(key);
        }
        Ok(())
    }
}

#[async_trait]
impl BulkStore for MemoryStore {
    /// Under one lock: each card is created, updated or kept atomically.
    /// Cards created by the load go to the change stream, as a single
    /// card's load does (`ChangeEvent::loaded`).
    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError> {
        let mut map = self.cards.write();
        let mut outcomes = Vec::with_capacity(cards.len());
        for card in cards {
            let outcome = match map.get_mut(&card.number) {
                None => {
                    self.append_event(|| {
                        Ok(ChangeEvent::loaded(card.number.as_str(), json(card)?))
                    })?;
                    map.insert(card.number.clone(), CardRecord::new(card.clone()));
                    self.coherence.0.card_changed(card.number.as_str());
                    CardLoad::Created
                }
                Some(r)
                    if r.card.status == CardStatus::New
                        && (r.card.category != card.category
                            || r.card.card_type != card.card_type) =>
                {
                    // No event: a load event's id is one per card
                    // (docs/events.md); a New card's category and type
                    // changed by a later load are in its state, not its
                    // history.
                    r.card.category = card.category;
                    r.card.card_type = card.card_type;
                    r.version += 1;
                    self.coherence.0.card_changed(card.number.as_str());
                    CardLoad::Updated
                }
                Some(_) => CardLoad::Existing,
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn dump_page(&self, at: Option<&str>, count: usize) -> Result<DumpPage, StoreError> {
        let Some((mut phase, after)) = split_cursor(at) else {
            return Err(StoreError::Corrupt {
                key: String::new(),
                reason: format!("bad dump cursor {at:?}"),
            });
        };
        let mut after = after.to_owned();
        let mut items = Vec::new();
        let count = count.max(1);
        // A phase that ends within a call hands over to the next one at
        // once. (A page of the records phase can still be empty: it covers
        // `count` cards, whether they hold records or not.)
        loop {
            match self.dump_phase(phase, &after, count, &mut items) {
                Some(last) => {
                    return Ok(DumpPage {
                        items,
                        next: Some(cursor(phase, &last)),
                    })
                }
                None if phase + 1 < PHASES.len() => {
                    phase += 1;
                    after.clear();
                    if !items.is_empty() {
                        return Ok(DumpPage {
                            items,
                            next: Some(cursor(phase, "")),
                        });
                    }
                }
                None => return Ok(DumpPage { items, next: None }),
            }
        }
    }

    async fn restore_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        let mut map = self.cards.write();
        if map.contains_key(&card.number) {
            return Ok(false);
        }
        let mut record = CardRecord::new(card.clone());
        record.history = history.to_vec();
        map.insert(card.number.clone(), record);
        self.coherence.0.card_changed(card.number.as_str());
        Ok(true)
    }

    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut map = self.cards.write();
        let Some(record) = map.get_mut(number) else {
            return Ok(false);
        };
        let now = Instant::now();
        record.records.retain(|_, (_, until)| *until > now);
        if record.records.contains_key(key) {
            return Ok(false);
        }
        let until = match ttl_ms {
            Some(ms) => later(now, Duration::from_millis(ms.max(1) as u64)),
            None => later(now, Duration::MAX),
        };
        record
            .records
            .insert(key.to_owned(), (value.to_owned(), until));
        self.coherence.0.card_changed(number.as_str());
        Ok(true)
    }

    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        let mut map = self.cards.write();
        let mut created = Vec::with_capacity(cards.len());
        for card in cards {
            if map.contains_key(&card.number) {
                created.push(false);
                continue;
            }
            let number = card.number.as_str();
            self.append_event(|| Ok(ChangeEvent::loaded(number, json(card)?)))?;
            map.insert(card.number.clone(), CardRecord::new(card.clone()));
            self.coherence.0.card_changed(number);
            created.push(true);
        }
        Ok(created)
    }
}

/// The JSON an event carries: what the Redis store writes too.
fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        reason: format!("cannot encode: {e}"),
    })
}
