//! The typed commands the API hands to the engine, and their replies.

use super::holds::{Held, HoldRequest, Released};
use super::purchases::{
    Accrued, Calculated, ConfirmRequest, Confirmed, ManualBonusRequest, Reversed,
};
use crate::domain::{
    Actor, Amount, Card, CardNumber, Contact, ContactCode, ContactPatch, HistoryEntry, MobileNumber,
};

#[derive(Debug, Clone)]
pub enum Command {
    Balance {
        number: CardNumber,
    },
    Issue {
        actor: Actor,
        number: CardNumber,
    },
    BindTo {
        actor: Actor,
        number: CardNumber,
        mobile: MobileNumber,
    },
    Active {
        actor: Actor,
        number: CardNumber,
    },
    Block {
        actor: Actor,
        number: CardNumber,
        /// Given with `ContactMobileNumber`: the card must be that contact's.
        mobile: Option<MobileNumber>,
        reason_code: String,
        reason_name: Option<String>,
    },
    Unblock {
        actor: Actor,
        number: CardNumber,
        mobile: Option<MobileNumber>,
        reason_code: String,
        reason_name: Option<String>,
    },
    UpsertContact {
        code: ContactCode,
        patch: ContactPatch,
    },
    History {
        number: CardNumber,
        before: Option<u64>,
        limit: usize,
    },
    /// The bonus operations of the card's history.
    Transactions {
        number: CardNumber,
        before: Option<u64>,
        limit: usize,
    },
    Calculate {
        number: CardNumber,
        amount: Amount,
        bonus_to_pay: Amount,
    },
    Confirm(ConfirmRequest),
    Cancel {
        actor: Actor,
        number: CardNumber,
        purchase_id: String,
    },
    Refund {
        actor: Actor,
        number: CardNumber,
        purchase_id: String,
        refund_id: String,
        amount: Amount,
    },
    ManualBonus(ManualBonusRequest),
    Hold(HoldRequest),
    Release {
        actor: Actor,
        number: CardNumber,
        purchase_id: String,
    },
}

impl Command {
    /// Commands with the same key run one after another, in arrival order.
    pub fn ordering_key(&self) -> String {
        match self {
            Command::Balance { number }
            | Command::Issue { number, .. }
            | Command::BindTo { number, .. }
            | Command::Active { number, .. }
            | Command::Block { number, .. }
            | Command::Unblock { number, .. }
            | Command::History { number, .. }
            | Command::Transactions { number, .. }
            | Command::Calculate { number, .. }
            | Command::Confirm(ConfirmRequest { number, .. })
            | Command::Cancel { number, .. }
            | Command::Refund { number, .. }
            | Command::ManualBonus(ManualBonusRequest { number, .. })
            | Command::Hold(HoldRequest { number, .. })
            | Command::Release { number, .. } => format!("card:{number}"),
            Command::UpsertContact { code, .. } => format!("contact:{code}"),
        }
    }

    /// Low-cardinality name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Balance { .. } => "balance",
            Command::Issue { .. } => "issue",
            Command::BindTo { .. } => "bindto",
            Command::Active { .. } => "active",
            Command::Block { .. } => "block",
            Command::Unblock { .. } => "unblock",
            Command::UpsertContact { .. } => "upsert_contact",
            Command::History { .. } => "history",
            Command::Transactions { .. } => "transactions",
            Command::Calculate { .. } => "calculate",
            Command::Confirm(_) => "confirm",
            Command::Cancel { .. } => "cancel",
            Command::Refund { .. } => "refund",
            Command::ManualBonus(_) => "manual_bonus",
            Command::Hold(_) => "hold",
            Command::Release { .. } => "release",
        }
    }
}

/// A card as a balance read shows it: with its contact, if bound.
#[derive(Debug, Clone)]
pub struct BalanceView {
    pub card: Card,
    pub contact: Option<Contact>,
}

#[derive(Debug, Clone)]
pub struct ContactView {
    pub contact: Contact,
    pub card: Option<Card>,
    pub created: bool,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Balance(BalanceView),
    Done,
    Contact(ContactView),
    History(HistoryPage),
    Calculated(Calculated),
    Confirmed(Confirmed),
    Reversed(Reversed),
    Accrued(Accrued),
    Held(Held),
    Released(Released),
}

/// A page of a card's history, newest first: entries with their sequence
/// numbers, and the cursor of the next (older) page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<(u64, HistoryEntry)>,
    pub next: Option<u64>,
    /// Older entries exist, but only in the archive, and this server has
    /// none configured to read them from (docs/adr/0009).
    pub older_archived: bool,
}

impl From<crate::store::HistoryPage> for HistoryPage {
    fn from(page: crate::store::HistoryPage) -> HistoryPage {
        HistoryPage {
            older_archived: page.next.is_none() && page.archived_below > 0,
            entries: page.entries,
            next: page.next,
        }
    }
}
