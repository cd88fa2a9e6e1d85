//! The change stream (docs/events.md, docs/adr/0009): every entry that goes
//! into a card's history, and every card a data load creates, is also an
//! event, written by the store in the same atomic step as the change itself,
//! so a consumer (the archive) sees exactly what the card's history says.
//!
//! The store appends the history entry's JSON as it stored it; the event's
//! id is `<card>:<sequence number>` (the entry's place in the card's
//! history), so a consumer that gets an event twice can tell, and the
//! archive can page a card's history by the same cursor as the store.

use serde::{Deserialize, Serialize};

/// The version of the event layout (`v` of a stream entry).
pub const EVENT_FORMAT_VERSION: u32 = 1;

/// How many events the log keeps when no one consumes them (Redis: per
/// stream, approximately; each cluster slot has its own stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventLog {
    /// 0: no events are written.
    pub max_len: u64,
}

impl EventLog {
    pub const OFF: EventLog = EventLog { max_len: 0 };

    pub fn enabled(&self) -> bool {
        self.max_len > 0
    }
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An entry of the card's history; `body` is the entry's JSON.
    History,
    /// A data load created the card (in New); `body` is the card's JSON.
    Loaded,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::History => "history",
            EventKind::Loaded => "loaded",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        match text {
            "history" => Some(EventKind::History),
            "loaded" => Some(EventKind::Loaded),
            _ => None,
        }
    }
}

/// One event as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// `<card>:<seq>` for a history entry, `<card>:loaded` for a load.
    pub id: String,
    pub card: String,
    pub kind: EventKind,
    /// The history entry's sequence number (history events only).
    pub seq: Option<u64>,
    /// JSON: the history entry, or the card as loaded.
    pub body: String,
}

impl ChangeEvent {
    pub fn history(card: &str, seq: u64, body: String) -> ChangeEvent {
        ChangeEvent {
            id: history_event_id(card, seq),
            card: card.to_owned(),
            kind: EventKind::History,
            seq: Some(seq),
            body,
        }
    }

    pub fn loaded(card: &str, body: String) -> ChangeEvent {
        ChangeEvent {
            id: loaded_event_id(card),
            card: card.to_owned(),
            kind: EventKind::Loaded,
            seq: None,
            body,
        }
    }
}

pub fn history_event_id(card: &str, seq: u64) -> String {
    format!("{card}:{seq}")
}

pub fn loaded_event_id(card: &str) -> String {
    format!("{card}:loaded")
}
