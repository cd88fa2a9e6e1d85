//! What a store hands out for an export and takes back on an import: every
//! record as stored, walked page by page with an opaque cursor so that
//! memory stays bounded however large the store is.

use crate::domain::{Card, CardNumber, Contact, HistoryEntry};

use super::Index;

/// Records of one kind come out together, in this order: every card before
/// any card's record, so an import can stream a dump in one pass (a record
/// needs its card), then contacts, then the index entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpItem {
    Card {
        card: Card,
        /// Oldest first.
        history: Vec<HistoryEntry>,
    },
    /// A record kept with a card (a purchase, an operation's outcome).
    Record {
        number: CardNumber,
        key: String,
        value: String,
        /// Time left, ms (`None`: it does not expire).
        ttl_ms: Option<i64>,
    },
    Contact(Contact),
    Index {
        index: Index,
        key: String,
        owner: String,
    },
}

/// A page of a dump, and the cursor of the next one (`None`: done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPage {
    pub items: Vec<DumpItem>,
    pub next: Option<String>,
}

/// What a bulk card line did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardLoad {
    Created,
    /// It existed and was still New: it took the line's category and type.
    Updated,
    /// It existed and kept its state.
    Existing,
}

/// The phases of a dump, in order; a cursor names its phase.
pub const PHASES: [&str; 6] = [
    "cards",
    "records",
    "contacts",
    "mobile",
    "contact-card",
    "purchase",
];

impl Index {
    /// The index's name in dumps.
    pub fn name(self) -> &'static str {
        match self {
            Index::Mobile => "mobile",
            Index::ContactCard => "contact-card",
            Index::Purchase => "purchase",
        }
    }

    pub fn from_name(name: &str) -> Option<Index> {
        [Index::Mobile, Index::ContactCard, Index::Purchase]
            .into_iter()
            .find(|i| i.name() == name)
    }
}

/// A cursor `phase:position`: the phase's index in [`PHASES`] and where it
/// stopped (its meaning is the store's).
pub fn split_cursor(cursor: Option<&str>) -> Option<(usize, &str)> {
    match cursor {
        None => Some((0, "")),
        Some(c) => {
            let (phase, rest) = c.split_once(':')?;
            let phase: usize = phase.parse().ok()?;
            (phase < PHASES.len()).then_some((phase, rest))
        }
    }
}

pub fn cursor(phase: usize, position: &str) -> String {
    format!("{phase}:{position}")
}
