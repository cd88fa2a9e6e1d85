//! The embedded store: everything in process memory, nothing survives a
//! restart. Each write takes the lock of the one map it touches, which makes
//! every conditional write of the trait atomic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{
    CardRecordWrite, Cas, Claim, Expiry, HistoryPage, Index, RecordRead, Store, StoreError,
    Versioned,
};
use crate::domain::{Card, CardNumber, Contact, ContactCode, HistoryEntry};

struct CardRecord {
    card: Card,
    version: u64,
    history: Vec<HistoryEntry>,
    /// key → (value, expires at)
    records: HashMap<String, (String, Instant)>,
}

#[derive(Default)]
pub struct MemoryStore {
    cards: RwLock<HashMap<CardNumber, CardRecord>>,
    contacts: RwLock<HashMap<ContactCode, Versioned<Option<Contact>>>>,
    mobiles: RwLock<HashMap<String, Stamped>>,
    contact_cards: RwLock<HashMap<String, Stamped>>,
    purchases: RwLock<HashMap<String, Stamped>>,
}

/// An index entry: its owner and when it was set (a monotonic clock, so
/// that a step of the wall clock cannot age a claim).
struct Stamped {
    owner: String,
    since: Instant,
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

    fn index(&self, index: Index) -> &RwLock<HashMap<String, Stamped>> {
        match index {
            Index::Mobile => &self.mobiles,
            Index::ContactCard => &self.contact_cards,
            Index::Purchase => &self.purchases,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        Ok(self.cards.read().get(number).map(|r| Versioned {
            value: r.card.clone(),
            version: r.version,
        }))
    }

    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        let mut map = self.cards.write();
        Ok(cards
            .iter()
            .map(|card| {
                if map.contains_key(&card.number) {
                    false
                } else {
                    map.insert(
                        card.number.clone(),
                        CardRecord {
                            card: card.clone(),
                            version: 1,
                            history: Vec::new(),
                            records: HashMap::new(),
                        },
                    );
                    true
                }
            })
            .collect())
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
                let now = Instant::now();
                record.records.retain(|_, (_, until)| *until > now);
                let refused = records.iter().any(|w| {
                    let exists = record.records.contains_key(&w.key);
                    (w.create_only && exists) || (w.expiry == Expiry::Keep && !exists)
                });
                if refused {
                    return Ok(Cas::Conflict);
                }
                record.card = card.clone();
                record.version += 1;
                if let Some(entry) = entry {
                    record.history.push(entry.clone());
                }
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
            _ => Ok(Cas::Conflict),
        }
    }

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
        Ok(HistoryPage {
            entries,
            next: (start > 0).then_some(start as u64),
        })
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
        Ok(self.index(index).read().get(key).map(Stamped::claim))
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        let mut map = self.index(index).write();
        let current = map.get(key);
        if current.map(|c| c.owner.as_str()) != expected {
            return Ok(Err(current.map(Stamped::claim)));
        }
        map.insert(
            key.to_owned(),
            Stamped {
                owner: owner.to_owned(),
                since: Instant::now(),
            },
        );
        Ok(Ok(()))
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut map = self.index(index).write();
        if map.get(key).is_some_and(|c| c.owner == owner) {
            map.remove(key);
        }
        Ok(())
    }
}
