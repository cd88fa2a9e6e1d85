//! The card and its state machine (docs/api.md §4). Every operation either
//! refuses with the Key the contract names, leaves the card unchanged (the
//! idempotent "already there" answers), or yields the new card together with
//! the history entry that records the change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::{ErrorKey, RuleError};
use super::history::{HistoryEntry, Operation};
use super::hold::Hold;
use super::ids::{CardNumber, ContactCode};
use super::ledger::{Ledger, Lot};
use super::money::Amount;
use super::policy::{may_block, may_unblock, Actor};
use super::reference::{BlockReason, CardStatus, CardType, Category, Role, UnblockReason};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub number: CardNumber,
    pub status: CardStatus,
    pub category: Category,
    pub card_type: CardType,
    /// The contact this card is bound to. For a card blocked for replacement
    /// it stays set: the card was that contact's, and its history says so.
    pub contact: Option<ContactCode>,
    pub block: Option<BlockInfo>,
    /// Set on a card blocked for replacement once a new card took its place.
    pub replaced_by: Option<CardNumber>,
    /// Set on the new card of a replacement: which card it took over from.
    pub replaces: Option<CardNumber>,
    /// The card's bonuses.
    #[serde(default)]
    pub ledger: Ledger,
    /// Lots taken off this (replaced) card and not yet delivered to the
    /// card that replaced it: an outbox, so that a cut-short transfer can be
    /// completed exactly once.
    #[serde(default)]
    pub transfer_out: Vec<Lot>,
    /// Cards whose lots this card has received (replacement transfers).
    #[serde(default)]
    pub received_from: Vec<CardNumber>,
    /// The debt (`Ledger::debt`) taken off this replaced card with its
    /// lots, not yet delivered: a replacement carries what the customer
    /// owes, or a new card would wipe it.
    #[serde(default)]
    pub transfer_out_debt: Amount,
    /// Open holds (issue 24, `hold.rs`): bonuses reserved for a purchase
    /// being paid, out of the ledger until confirmed or released. One
    /// whose `until` has passed counts as released.
    ///
    /// Left out when empty, so a card without holds is stored (and
    /// exported) byte for byte as before holds existed. Safe only because
    /// it is the last field: a field added after it must not be skipped
    /// (docs/stored-formats.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
}

/// Who blocked the card, why, when, and from which status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub reason: BlockReason,
    pub reason_name: Option<String>,
    pub login: String,
    pub role: Role,
    #[serde(with = "super::compact::timestamp")]
    pub at: OffsetDateTime,
    pub previous: CardStatus,
}

/// The result of an operation that the rules allowed.
// Short-lived and moved once: boxing the card would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Already in the requested state: answer OK, write nothing.
    Unchanged,
    Changed {
        card: Card,
        entry: HistoryEntry,
    },
}

/// What `bindto` needs to do for a card the rules let it bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindCheck {
    /// Bound to this very contact already: OK, nothing to do.
    AlreadyBound,
    /// Issued and unbound: may be bound once the contact is free.
    Bindable,
}

impl Card {
    /// A card as data loading creates it: New and unbound.
    pub fn new(number: CardNumber, category: Category, card_type: CardType) -> Card {
        Card {
            number,
            status: CardStatus::New,
            category,
            card_type,
            contact: None,
            block: None,
            replaced_by: None,
            replaces: None,
            ledger: Ledger::default(),
            transfer_out: Vec::new(),
            received_from: Vec::new(),
            transfer_out_debt: Amount::ZERO,
            holds: Vec::new(),
        }
    }

    /// Lots or debt wait in the outbox for the card that replaced this one.
    pub fn outbox_pending(&self) -> bool {
        !self.transfer_out.is_empty() || self.transfer_out_debt > Amount::ZERO
    }

    /// Moves every unburnt lot and the debt into the outbox (a replacement).
    pub fn hand_over(&mut self, today: time::Date) {
        // Held bonuses move too (a block already released the holds: this
        // only guards a card that still has one).
        self.release_all_holds();
        let lots = self.ledger.take_all_unburnt(today);
        self.transfer_out.extend(lots);
        let debt = std::mem::take(&mut self.ledger.debt);
        self.transfer_out_debt =
            Amount::total([self.transfer_out_debt, debt]).unwrap_or(Amount::TOTAL_MAX);
    }

    pub fn is_bound(&self) -> bool {
        self.contact.is_some()
    }

    /// A replacement this card takes part in whose last steps have not run
    /// (they were cut short by a crash or a store fault): `(old, new)`.
    /// Seen from the old card, lots wait in its outbox; seen from the new
    /// one, it has not received from the card it replaces. Any later command
    /// on either card finishes it first, so lots are never stranded.
    pub fn unfinished_replacement(&self) -> Option<(CardNumber, CardNumber)> {
        if let Some(new) = &self.replaced_by {
            if self.outbox_pending() {
                return Some((self.number.clone(), new.clone()));
            }
        }
        self.unfinished_incoming()
            .map(|old| (old.clone(), self.number.clone()))
    }

    /// The card this one replaces, while its lots have not arrived here.
    /// Such a card must not be replaced in turn before they have: they
    /// would arrive on a card that has passed its own lots on already.
    pub fn unfinished_incoming(&self) -> Option<&CardNumber> {
        self.replaces
            .as_ref()
            .filter(|old| !self.received_from.contains(old))
    }

    /// Blocked with reason 4: final, never unblocked, and it frees its
    /// contact for a new card.
    pub fn is_blocked_for_replacement(&self) -> bool {
        self.status == CardStatus::Blocked
            && self
                .block
                .as_ref()
                .is_some_and(|b| b.reason == BlockReason::Replacement)
    }

    /// New → Issued; Issued → OK unchanged; Active or Blocked → StatusError.
    pub fn issue(&self, actor: &Actor, now: OffsetDateTime) -> Result<Change, RuleError> {
        match self.status {
            CardStatus::New => {
                Ok(self.transition(CardStatus::Issued, Operation::Issue, actor, now))
            }
            CardStatus::Issued => Ok(Change::Unchanged),
            CardStatus::Active | CardStatus::Blocked => Err(status_error(format!(
                "the card is {}: only a New card can be issued",
                self.status.name()
            ))),
        }
    }

    /// May this card be bound to `contact`? (The contact's side — whether it
    /// holds another card — is checked by the caller, which sees it.)
    pub fn check_bind(&self, contact: &ContactCode) -> Result<BindCheck, RuleError> {
        match self.status {
            CardStatus::New => {
                return Err(status_error(
                    "the card is New: issue it before binding it to a contact",
                ))
            }
            CardStatus::Blocked => {
                return Err(status_error(
                    "the card is Blocked: a blocked card cannot be bound to a contact",
                ))
            }
            CardStatus::Issued | CardStatus::Active => {}
        }
        match &self.contact {
            Some(bound) if bound == contact => Ok(BindCheck::AlreadyBound),
            Some(_) => Err(RuleError::new(
                ErrorKey::CardNumberBindToAnotherContact,
                "the card is bound to another contact",
            )),
            // An Active card is always bound; Issued and unbound is the only
            // bindable state left.
            None => Ok(BindCheck::Bindable),
        }
    }

    /// Binds a card that `check_bind` found `Bindable`. The status stays.
    pub fn bind(
        &self,
        contact: &ContactCode,
        replaces: Option<CardNumber>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Change {
        let mut card = self.clone();
        card.contact = Some(contact.clone());
        card.replaces = replaces;
        let entry = entry(
            self,
            card.status,
            Operation::BindTo,
            actor,
            now,
            None,
            Some(contact.to_string()),
        );
        Change::Changed { card, entry }
    }

    /// Records on an old card, blocked for replacement, which card replaced it.
    pub fn mark_replaced(&self, by: &CardNumber, actor: &Actor, now: OffsetDateTime) -> Change {
        if self.replaced_by.as_ref() == Some(by) {
            return Change::Unchanged;
        }
        let mut card = self.clone();
        card.replaced_by = Some(by.clone());
        let entry = entry(
            self,
            card.status,
            Operation::Replaced,
            actor,
            now,
            None,
            Some(by.to_string()),
        );
        Change::Changed { card, entry }
    }

    /// Issued(bound) → Active when the contact's data is sufficient.
    pub fn activate(
        &self,
        sufficient: bool,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Change, RuleError> {
        match self.status {
            CardStatus::Active => Ok(Change::Unchanged),
            CardStatus::New => Err(status_error(
                "the card is New: it must be issued and bound first",
            )),
            CardStatus::Blocked => Err(status_error("the card is Blocked: unblock it instead")),
            CardStatus::Issued if !self.is_bound() => Err(status_error(
                "the card is not bound to a contact: bind it first",
            )),
            CardStatus::Issued if !sufficient => Err(status_error(
                "the contact's personal data is not sufficient to activate the card",
            )),
            CardStatus::Issued => {
                Ok(self.transition(CardStatus::Active, Operation::Active, actor, now))
            }
        }
    }

    /// Issued(bound) or Active → Blocked. The reason code and the role ×
    /// reason table are checked before the card's status (docs/api.md §5).
    pub fn block(
        &self,
        actor: &Actor,
        reason_code: &str,
        reason_name: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Change, RuleError> {
        let reason = BlockReason::parse_code(reason_code).ok_or_else(|| {
            RuleError::new(
                ErrorKey::BlockReasonError,
                format!("unknown block reason code {reason_code:?}: expected 0, 1, 2, 3 or 4"),
            )
        })?;
        if !may_block(actor.role, reason) {
            return Err(RuleError::new(
                ErrorKey::BlockReasonError,
                format!(
                    "the role {} may not block a card with the reason {} ({})",
                    actor.role.as_str(),
                    reason.code(),
                    reason.name()
                ),
            ));
        }
        match self.status {
            CardStatus::New => {
                return Err(status_error(
                    "the card is New: only a bound card can be blocked",
                ))
            }
            CardStatus::Blocked => return Err(status_error("the card is already Blocked")),
            CardStatus::Issued if !self.is_bound() => {
                return Err(status_error(
                    "the card is Issued but not bound to a contact: it cannot be blocked",
                ))
            }
            CardStatus::Issued | CardStatus::Active => {}
        }
        let mut card = self.clone();
        card.status = CardStatus::Blocked;
        // No purchase is confirmed on a blocked card: its holds end with
        // the block, their bonuses back in their lots (then Frozen).
        card.release_all_holds();
        card.block = Some(BlockInfo {
            reason,
            reason_name: reason_name.clone(),
            login: actor.login.clone(),
            role: actor.role,
            at: now,
            previous: self.status,
        });
        let entry = entry(
            self,
            CardStatus::Blocked,
            Operation::Block,
            actor,
            now,
            Some((
                reason.code(),
                reason_name.unwrap_or_else(|| reason.name().to_owned()),
            )),
            None,
        );
        Ok(Change::Changed { card, entry })
    }

    /// Blocked → Active when the contact's data is sufficient, else Issued.
    /// Status first, then the reason rules, which need the block reason.
    pub fn unblock(
        &self,
        actor: &Actor,
        reason_code: &str,
        reason_name: Option<String>,
        sufficient: bool,
        now: OffsetDateTime,
    ) -> Result<Change, RuleError> {
        let block = match (&self.status, &self.block) {
            (CardStatus::Blocked, Some(block)) => block,
            _ => {
                return Err(status_error(format!(
                    "the card is {}: only a Blocked card can be unblocked",
                    self.status.name()
                )))
            }
        };
        let refuse = |message: String| Err(RuleError::new(ErrorKey::UnBlockReasonError, message));
        let Some(reason) = UnblockReason::parse_code(reason_code) else {
            return refuse(format!(
                "unknown unblock reason code {reason_code:?}: expected 0, 1, 2 or 3"
            ));
        };
        if block.reason == BlockReason::Replacement {
            return refuse(
                "the card was blocked for replacement (4) and can never be unblocked".into(),
            );
        }
        if block.role == Role::Administrator && actor.role != Role::Administrator {
            return refuse(
                "the card was blocked by an administrator: only an administrator may unblock it"
                    .into(),
            );
        }
        if reason.answers() != block.reason {
            return refuse(format!(
                "the unblock reason {} ({}) does not answer the block reason {} ({})",
                reason.code(),
                reason.name(),
                block.reason.code(),
                block.reason.name()
            ));
        }
        if !may_unblock(actor.role, reason) {
            return refuse(format!(
                "the role {} may not unblock a card with the reason {} ({})",
                actor.role.as_str(),
                reason.code(),
                reason.name()
            ));
        }
        let target = if sufficient {
            CardStatus::Active
        } else {
            CardStatus::Issued
        };
        let mut card = self.clone();
        card.status = target;
        card.block = None;
        let entry = entry(
            self,
            target,
            Operation::Unblock,
            actor,
            now,
            Some((
                reason.code(),
                reason_name.unwrap_or_else(|| reason.name().to_owned()),
            )),
            None,
        );
        Ok(Change::Changed { card, entry })
    }

    fn transition(
        &self,
        to: CardStatus,
        op: Operation,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Change {
        let mut card = self.clone();
        card.status = to;
        let entry = entry(self, to, op, actor, now, None, None);
        Change::Changed { card, entry }
    }
}

fn status_error(message: impl Into<String>) -> RuleError {
    RuleError::new(ErrorKey::StatusError, message)
}

fn entry(
    before: &Card,
    to: CardStatus,
    operation: Operation,
    actor: &Actor,
    at: OffsetDateTime,
    reason: Option<(u8, String)>,
    detail: Option<String>,
) -> HistoryEntry {
    let (reason_code, reason_name) = match reason {
        Some((code, name)) => (Some(code), Some(name)),
        None => (None, None),
    };
    HistoryEntry {
        at,
        login: actor.login.clone(),
        role: actor.role,
        operation,
        from: before.status,
        to,
        reason_code,
        reason_name,
        detail,
        bonus: None,
    }
}

#[cfg(test)]
#[path = "card_tests.rs"]
mod tests;
