//! The card's audit history (API.md §9).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::reference::{CardStatus, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    Issue,
    BindTo,
    Active,
    Block,
    Unblock,
    /// The card was replaced by a new card bound to its contact.
    Replaced,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Issue => "issue",
            Operation::BindTo => "bindto",
            Operation::Active => "active",
            Operation::Block => "block",
            Operation::Unblock => "unblock",
            Operation::Replaced => "replaced",
        }
    }
}

/// One change of a card, as written to its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub login: String,
    pub role: Role,
    pub operation: Operation,
    pub from: CardStatus,
    pub to: CardStatus,
    /// Block or unblock reason code, where the operation has one.
    pub reason_code: Option<u8>,
    pub reason_name: Option<String>,
    /// Contact code (bindto) or the other card number (replacement).
    pub detail: Option<String>,
}
