//! The card's audit history (API.md §9).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::Amount;
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
    Purchase,
    Cancel,
    Refund,
    /// Manual accrual (promotions, status bonuses).
    Bonus,
    /// Lots moved out to the card that replaced this one.
    TransferOut,
    /// Lots received from the card this one replaced.
    TransferIn,
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
            Operation::Purchase => "purchase",
            Operation::Cancel => "cancel",
            Operation::Refund => "refund",
            Operation::Bonus => "bonus",
            Operation::TransferOut => "transfer_out",
            Operation::TransferIn => "transfer_in",
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
    /// For bonus operations: how the ledger moved.
    #[serde(default)]
    pub bonus: Option<BonusMovement>,
}

/// The ledger side of a bonus operation, for the card's transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BonusMovement {
    /// PurchaseId, RefundId or OperationId.
    pub reference: String,
    /// Bonuses added (accrual, returned write-off, transfer in).
    pub credited: Amount,
    /// Bonuses removed (write-off, reversed accrual, transfer out).
    pub debited: Amount,
    /// Money amount of the purchase or refund, where there is one.
    pub money: Option<Amount>,
    pub comment: Option<String>,
}
