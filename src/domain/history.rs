//! The card's audit history (docs/api.md §9).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::Amount;
use super::reference::{CardStatus, Role};

/// By variant name in JSON, by index in the compact encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    // The numbers are the compact encoding's: never change or reuse one.
    Issue = 0,
    BindTo = 1,
    Active = 2,
    Block = 3,
    Unblock = 4,
    /// The card was replaced by a new card bound to its contact.
    Replaced = 5,
    Purchase = 6,
    Cancel = 7,
    Refund = 8,
    /// Manual accrual (promotions, status bonuses).
    Bonus = 9,
    /// Lots moved out to the card that replaced this one.
    TransferOut = 10,
    /// Lots received from the card this one replaced.
    TransferIn = 11,
    /// The card came in by an import merged into live data
    /// (`/api/admin/import?merge=true`): what precedes it was not written here.
    Import = 12,
    /// A purchase's write-off reserved (issue 24): moves no bonuses.
    Hold = 13,
    /// A hold freed by `/api/purchase/release`.
    Release = 14,
}

impl Operation {
    const ALL: [Operation; 15] = [
        Operation::Issue,
        Operation::BindTo,
        Operation::Active,
        Operation::Block,
        Operation::Unblock,
        Operation::Replaced,
        Operation::Purchase,
        Operation::Cancel,
        Operation::Refund,
        Operation::Bonus,
        Operation::TransferOut,
        Operation::TransferIn,
        Operation::Import,
        Operation::Hold,
        Operation::Release,
    ];

    /// The name JSON has always used for it (the variant's).
    fn json_name(self) -> &'static str {
        match self {
            Operation::Issue => "Issue",
            Operation::BindTo => "BindTo",
            Operation::Active => "Active",
            Operation::Block => "Block",
            Operation::Unblock => "Unblock",
            Operation::Replaced => "Replaced",
            Operation::Purchase => "Purchase",
            Operation::Cancel => "Cancel",
            Operation::Refund => "Refund",
            Operation::Bonus => "Bonus",
            Operation::TransferOut => "TransferOut",
            Operation::TransferIn => "TransferIn",
            Operation::Import => "Import",
            Operation::Hold => "Hold",
            Operation::Release => "Release",
        }
    }

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
            Operation::Import => "import",
            Operation::Hold => "hold",
            Operation::Release => "release",
        }
    }
}

impl super::compact::Coded for Operation {
    const WHAT: &'static str = "operation";
    fn to_code(self) -> u8 {
        self as u8
    }
    fn of_code(code: u8) -> Option<Self> {
        Operation::ALL.into_iter().find(|o| *o as u8 == code)
    }
    fn json_name(self) -> &'static str {
        Operation::json_name(self)
    }
    fn of_json_name(name: &str) -> Option<Self> {
        Operation::ALL.into_iter().find(|o| o.json_name() == name)
    }
}
super::compact::coded_serde!(Operation);

/// One change of a card, as written to its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "super::compact::timestamp")]
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
    /// The card's debt (`Ledger::debt`) after the operation, on operations
    /// that changed it: what a support desk reads to see what was owed,
    /// when, and what paid it (a transfer out names the debt it moved).
    #[serde(default)]
    pub debt: Option<Amount>,
}

/// Sets `entry`'s debt when the operation changed the card's debt.
pub fn note_debt(entry: &mut HistoryEntry, before: &super::Card, after: &super::Card) {
    if before.ledger.debt != after.ledger.debt {
        if let Some(b) = entry.bonus.as_mut() {
            b.debt = Some(after.ledger.debt);
        }
    }
}
