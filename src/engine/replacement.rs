//! Card replacement: a card blocked for replacement hands its bonuses to
//! the card bound in its place, in idempotent steps that any later command
//! on either card finishes if they were cut short; and the chains of
//! replacements that purchases and outcomes are followed along. One limit
//! bounds every walk along a chain, with one answer at it.

use time::OffsetDateTime;

use super::context::Ops;
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::support::MAX_ATTEMPTS;
use crate::domain::history::note_debt;
use crate::domain::{
    card::Change, Actor, Amount, BonusMovement, Card, CardNumber, HistoryEntry, Operation, Role,
};
use crate::metrics as m;
use crate::store::{Cas, Versioned};

/// Replacements any walk along a chain of them follows, at most: to the
/// current card (cancel, refund), back to earlier cards (an outcome stored
/// there), or finishing earlier replacements first.
const MAX_REPLACEMENT_CHAIN: usize = 16;

/// The one answer past the limit, whatever walked the chain: a chain that
/// long is corrupt data or a cycle, never a customer's history, and acting
/// as if it ended there could apply an operation twice.
fn chain_too_long(from: &CardNumber) -> EngineError {
    EngineError::Internal(format!(
        "the replacement chain from card {from} is longer than {MAX_REPLACEMENT_CHAIN} replacements, or cyclic"
    ))
}

impl Ops {
    /// Finishes the replacement `card` takes part in, if its last steps
    /// were cut short. Returns whether it did: the card has changed, read it
    /// again.
    pub(crate) async fn finish_replacement(
        &self,
        card: &Card,
        actor: &Actor,
    ) -> Result<bool, EngineError> {
        match card.unfinished_replacement() {
            Some((old, new)) => {
                self.complete_replacement(&old, &new, actor).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The card as a read should show it: with an unfinished replacement
    /// finished first (by the system, as no one's request asked for it).
    pub(crate) async fn settled(
        &self,
        card: Versioned<Card>,
    ) -> Result<Versioned<Card>, EngineError> {
        let system = Actor {
            login: "system".into(),
            role: Role::Administrator,
        };
        if self.finish_replacement(&card.value, &system).await? {
            return self.load_card(&card.value.number).await;
        }
        Ok(card)
    }

    /// Completes a replacement, each step idempotent so that a retry after
    /// a cut-short attempt finishes it exactly once: mark the old card
    /// replaced and move its unburnt lots into its outbox; deliver the
    /// outbox to the new card (which remembers whom it received from); clear
    /// the outbox.
    pub(crate) async fn complete_replacement(
        &self,
        old: &CardNumber,
        new: &CardNumber,
        actor: &Actor,
    ) -> Result<(), EngineError> {
        self.complete_replacement_at(old, new, actor, 0).await
    }

    /// `depth`: how many replacements before `old` are being finished
    /// first (bounded, against corrupt cyclic data).
    async fn complete_replacement_at(
        &self,
        old: &CardNumber,
        new: &CardNumber,
        actor: &Actor,
        depth: usize,
    ) -> Result<(), EngineError> {
        let at = self.clock.now();
        let today = at.date();
        let mut marked_ok = false;
        for _ in 0..MAX_ATTEMPTS {
            // The old card's own predecessor first: lots still on their way
            // to it must arrive before it passes its lots on.
            let current = self.load_card(old).await?.value;
            if current.replaced_by.is_none() {
                if let Some(previous) = current.unfinished_incoming() {
                    if depth >= MAX_REPLACEMENT_CHAIN {
                        return Err(chain_too_long(old));
                    }
                    Box::pin(self.complete_replacement_at(previous, old, actor, depth + 1)).await?;
                    continue;
                }
            }
            let mut waiting = false;
            self.change_card(old, false, |card, _| {
                if card.replaced_by.as_ref() == Some(new) {
                    return Ok(Change::Unchanged);
                }
                if card.unfinished_incoming().is_some() {
                    waiting = true;
                    return Ok(Change::Unchanged);
                }
                let Change::Changed {
                    card: mut marked,
                    entry,
                } = card.mark_replaced(new, actor, at)
                else {
                    return Ok(Change::Unchanged);
                };
                marked.hand_over(today);
                Ok(Change::Changed {
                    card: marked,
                    entry,
                })
            })
            .await?;
            if !waiting {
                marked_ok = true;
                break;
            }
        }
        if !marked_ok {
            return Err(EngineError::Contention(format!(
                "replacement of card {old}"
            )));
        }

        let sender = self.load_card(old).await?.value;
        let (outbox, debt) = (sender.transfer_out, sender.transfer_out_debt);
        if outbox.is_empty() && debt == Amount::ZERO {
            // Nothing to move, but the new card records that it has taken
            // over (so that it is not seen as waiting for a transfer).
            return self.note_received(old, new).await;
        }
        let moved = Amount::total(outbox.iter().map(|l| l.amount)).unwrap_or(Amount::TOTAL_MAX);
        self.change_card(new, false, |card, _| {
            if card.received_from.contains(old) {
                return Ok(Change::Unchanged);
            }
            let mut next = card.clone();
            next.ledger.receive(outbox.clone(), debt, today);
            next.received_from.push(old.clone());
            let mut entry = transfer_entry(card, actor, at, Operation::TransferIn, old, moved);
            note_debt(&mut entry, card, &next);
            // A debt that came in and was paid at once from this card's own
            // bonuses leaves the card's debt as it was, yet took bonuses: the
            // entry says what is owed after it, so that the history explains
            // the fall of the balance (found by review).
            if debt > Amount::ZERO {
                if let Some(b) = entry.bonus.as_mut() {
                    b.debt = Some(next.ledger.debt);
                }
            }
            Ok(Change::Changed { card: next, entry })
        })
        .await?;
        m::bonus_amount("transfer", moved);

        self.change_card(old, false, |card, _| {
            if !card.outbox_pending() {
                return Ok(Change::Unchanged);
            }
            let mut next = card.clone();
            next.transfer_out.clear();
            next.transfer_out_debt = Amount::ZERO;
            let mut entry = transfer_entry(card, actor, at, Operation::TransferOut, new, moved);
            // The debt left with the lots: the entry says what it was.
            if let Some(b) = entry.bonus.as_mut() {
                b.debt = (debt > Amount::ZERO).then_some(debt);
            }
            Ok(Change::Changed { card: next, entry })
        })
        .await
    }

    /// Marks `new` as having received from `old` when there was nothing to
    /// move: no history entry, as no bonuses moved.
    async fn note_received(&self, old: &CardNumber, new: &CardNumber) -> Result<(), EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let card = self.load_card(new).await?;
            if card.value.received_from.contains(old) {
                return Ok(());
            }
            let mut next = card.value.clone();
            next.received_from.push(old.clone());
            let written = self
                .store
                .update_card_with(
                    &next,
                    card.version,
                    None,
                    &[],
                    self.settings.purchases.retention_secs,
                )
                .await?;
            if written == Cas::Applied {
                return Ok(());
            }
        }
        Err(EngineError::Contention(format!("card {new}")))
    }

    /// The cards from `first` along `replaced_by` to the current one, with
    /// every replacement on the way completed (its lots delivered), so that
    /// the current card's ledger holds whatever the purchase left.
    pub(crate) async fn replacement_chain(
        &self,
        first: &CardNumber,
        actor: &Actor,
    ) -> Result<Vec<CardNumber>, EngineError> {
        let mut chain = vec![first.clone()];
        loop {
            let card = self.load_card(&chain[chain.len() - 1]).await?.value;
            let Some(next) = card.replaced_by.clone() else {
                return Ok(chain);
            };
            if card.outbox_pending() {
                self.complete_replacement(&card.number, &next, actor)
                    .await?;
            }
            // `chain` holds one card more than the replacements followed.
            if chain.len() > MAX_REPLACEMENT_CHAIN || chain.contains(&next) {
                return Err(chain_too_long(first));
            }
            chain.push(next);
        }
    }

    /// An operation's stored outcome on a card that `card` replaced, directly
    /// or along earlier replacements.
    pub(crate) async fn predecessors_outcome<T: Kept>(
        &self,
        card: &Card,
        key: &str,
    ) -> Result<Option<Stored<T>>, EngineError> {
        let mut previous = card.replaces.clone();
        for _ in 0..MAX_REPLACEMENT_CHAIN {
            let Some(number) = previous else {
                return Ok(None);
            };
            if let Some(stored) = self.stored(&number, key).await? {
                return Ok(Some(stored));
            }
            previous = match self.store.get_card(&number).await? {
                Some(c) => c.value.replaces,
                None => None,
            };
        }
        match previous {
            None => Ok(None),
            Some(_) => Err(chain_too_long(&card.number)),
        }
    }
}

fn transfer_entry(
    card: &Card,
    actor: &Actor,
    at: OffsetDateTime,
    operation: Operation,
    other: &CardNumber,
    amount: Amount,
) -> HistoryEntry {
    let (credited, debited) = if operation == Operation::TransferIn {
        (amount, Amount::ZERO)
    } else {
        (Amount::ZERO, amount)
    };
    HistoryEntry {
        at,
        login: actor.login.clone(),
        role: actor.role,
        operation,
        from: card.status,
        to: card.status,
        reason_code: None,
        reason_name: None,
        detail: Some(other.to_string()),
        bonus: Some(BonusMovement {
            reference: other.to_string(),
            credited,
            debited,
            money: None,
            comment: None,
            debt: None,
        }),
    }
}
