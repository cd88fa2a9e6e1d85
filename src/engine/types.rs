//! What the API hands the engine and what it gets back: the commands, the
//! requests of the exactly-once operations, and the replies. Plain data,
//! no behaviour beyond naming: every other engine module may import this
//! one, and it imports none of them. The replies carry no stored names:
//! the store keeps those that outlive a request as records of its own
//! (`store/records.rs`, converted in `kept.rs`), and the API writes each
//! reply's JSON answer field by field (`api/purchase.rs`).

use time::{Date, OffsetDateTime};

use crate::domain::{
    Actor, Amount, BonusType, Card, CardNumber, Contact, ContactCode, ContactPatch, HistoryEntry,
    MobileNumber, RuleError,
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

#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    pub actor: Actor,
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub date: Option<Date>,
}

#[derive(Debug, Clone)]
pub struct ManualBonusRequest {
    pub actor: Actor,
    pub number: CardNumber,
    pub operation_id: String,
    pub amount: Amount,
    pub bonus_type: BonusType,
    pub active_from: Option<Date>,
    pub expire_date: Option<Date>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calculated {
    pub accrual: Amount,
    pub max_bonus_to_pay: Amount,
    pub discount_bp: i64,
    /// What confirm would refuse the purchase with: the till still learns
    /// `max_bonus_to_pay`, to offer the maximum instead.
    pub refusal: Option<RuleError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub accrual: Amount,
    pub accrual_active_from: Date,
    pub accrual_expire_date: Date,
    pub discount_bp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    pub number: CardNumber,
    pub purchase_id: String,
    pub refund_id: Option<String>,
    /// Money refunded by this operation (the whole purchase for a cancel).
    pub amount: Amount,
    pub accrual_reversed: Amount,
    pub bonus_returned: Amount,
    pub uncovered: Amount,
    pub refunded_total: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accrued {
    pub number: CardNumber,
    pub operation_id: String,
    pub amount: Amount,
    pub bonus_type: BonusType,
    pub active_from: Date,
    pub expire_date: Option<Date>,
}

#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub actor: Actor,
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub date: Option<Date>,
    /// `None`: `bonus.hold_secs`; capped by `bonus.hold_max_secs`.
    pub hold_secs: Option<u64>,
}

/// A hold's answer: calculate's fields and when the hold ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub accrual: Amount,
    pub max_bonus_to_pay: Amount,
    pub discount_bp: i64,
    pub held_until: OffsetDateTime,
}

/// A release's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub number: CardNumber,
    pub purchase_id: String,
    /// Bonuses this release gave back (0: the hold had expired, or was
    /// released before).
    pub released: Amount,
}
