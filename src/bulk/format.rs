//! The dump format: NDJSON, one tagged record per line (`Kind`), a header
//! first and a trailer last. The records carry the store's own encoding
//! (the card as stored, with its ledger and history), so that an import
//! gives back exactly what was exported. Documented in docs/export.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Card, CardNumber, Contact, HistoryEntry};
use crate::store::{DumpItem, Index};

pub const FORMAT: &str = "loyalty-dump";
/// The first release's format, the only one an import reads. Raised when a
/// record's meaning changes (docs/stored-formats.md): an import refuses
/// other versions up front, before any line is written.
pub const VERSION: u64 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Header {
    pub kind: String,
    pub format: String,
    pub version: u64,
    /// When the export started (RFC 3339); informative.
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CardLine {
    pub kind: String,
    pub card: Card,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordLine {
    pub kind: String,
    pub number: CardNumber,
    pub key: String,
    pub value: String,
    /// Time left when exported, ms (`null`: does not expire). Volatile.
    pub ttl_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactLine {
    pub kind: String,
    pub contact: Contact,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexLine {
    pub kind: String,
    pub index: String,
    pub key: String,
    pub owner: String,
}

/// The last line: what the dump holds. An import without it knows the dump
/// was cut short.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Counts {
    pub cards: u64,
    pub records: u64,
    pub contacts: u64,
    pub indexes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct End {
    pub kind: String,
    // Not `#[serde(flatten)]`: with serde_json's arbitrary_precision a
    // flattened number does not read back.
    pub cards: u64,
    pub records: u64,
    pub contacts: u64,
    pub indexes: u64,
}

/// A line of a dump, as read.
// Read one at a time and moved once: boxing the record would only add an
// allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum DumpLine {
    Header(Header),
    Item(DumpItem),
    End(Counts),
}

impl Counts {
    pub fn add(&mut self, item: &DumpItem) {
        match item {
            DumpItem::Card { .. } => self.cards += 1,
            DumpItem::Record { .. } => self.records += 1,
            DumpItem::Contact(_) => self.contacts += 1,
            DumpItem::Index { .. } => self.indexes += 1,
        }
    }
}

pub fn header(created_at: String) -> Header {
    Header {
        kind: "header".into(),
        format: FORMAT.into(),
        version: VERSION,
        created_at,
    }
}

pub fn end(counts: Counts) -> End {
    End {
        kind: "end".into(),
        cards: counts.cards,
        records: counts.records,
        contacts: counts.contacts,
        indexes: counts.indexes,
    }
}

/// One record as a line (without its newline).
pub fn encode(item: DumpItem) -> Result<Vec<u8>, serde_json::Error> {
    match item {
        DumpItem::Card { card, history } => serde_json::to_vec(&CardLine {
            kind: "card".into(),
            card,
            history,
        }),
        DumpItem::Record {
            number,
            key,
            value,
            ttl_ms,
        } => serde_json::to_vec(&RecordLine {
            kind: "record".into(),
            number,
            key,
            value,
            ttl_ms,
        }),
        DumpItem::Contact(contact) => serde_json::to_vec(&ContactLine {
            kind: "contact".into(),
            contact,
        }),
        DumpItem::Index { index, key, owner } => serde_json::to_vec(&IndexLine {
            kind: "index".into(),
            index: index.name().into(),
            key,
            owner,
        }),
    }
}

/// Reads a line by its `Kind` (the JSON is parsed once, as a value, then
/// into the record of that kind).
pub fn decode(line: Value) -> Result<DumpLine, String> {
    let kind = line
        .get("Kind")
        .and_then(Value::as_str)
        .ok_or("a dump line needs a Kind")?
        .to_owned();
    let bad = |e: serde_json::Error| format!("a {kind} line that does not read: {e}");
    Ok(match kind.as_str() {
        "header" => DumpLine::Header(serde_json::from_value(line).map_err(bad)?),
        "card" => {
            let l: CardLine = serde_json::from_value(line).map_err(bad)?;
            DumpLine::Item(DumpItem::Card {
                card: l.card,
                history: l.history,
            })
        }
        "record" => {
            let l: RecordLine = serde_json::from_value(line).map_err(bad)?;
            DumpLine::Item(DumpItem::Record {
                number: l.number,
                key: l.key,
                value: l.value,
                ttl_ms: l.ttl_ms,
            })
        }
        "contact" => {
            let l: ContactLine = serde_json::from_value(line).map_err(bad)?;
            DumpLine::Item(DumpItem::Contact(l.contact))
        }
        "index" => {
            let l: IndexLine = serde_json::from_value(line).map_err(bad)?;
            let index =
                Index::from_name(&l.index).ok_or_else(|| format!("unknown index {:?}", l.index))?;
            DumpLine::Item(DumpItem::Index {
                index,
                key: l.key,
                owner: l.owner,
            })
        }
        "end" => {
            let e: End = serde_json::from_value(line).map_err(bad)?;
            DumpLine::End(Counts {
                cards: e.cards,
                records: e.records,
                contacts: e.contacts,
                indexes: e.indexes,
            })
        }
        other => return Err(format!("unknown Kind {other:?}")),
    })
}
