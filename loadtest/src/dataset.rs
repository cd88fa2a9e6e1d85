//! The data set a load test runs on, and how its parts are laid out, so that
//! every request a scenario makes is valid against a correct server.
//!
//! Card `i` (0-based) is number `card_base + i`. Its contact, when it has
//! one, is code `LT-<number>` with mobile `mobile_base + i`. The ranges:
//!
//! ```text
//! 0 ........ hot ......... purchase_end ...... active ............ cards
//! | hot set  |  purchases  |  call centre     |  New: lifecycle pool  |
//! ```
//!
//! - `0..active` are Active, bound to their own contact, with
//!   `bonuses_per_card` manual bonus lots each (usable at once).
//! - The purchase range gets calculate/confirm/refund/cancel (any user, any
//!   card: the server serialises them). The hot set is its first cards.
//! - The call-centre range is blocked and unblocked: each card is held by
//!   one user at a time, so that a block never meets a card another user
//!   blocked, and no purchase ever meets a Blocked card.
//! - `active..cards` stay New for issue → contact → bind → activate; each is
//!   handed out once (a shared cursor), and a card that an earlier run took
//!   is recognised by its status and skipped.

use serde::{Deserialize, Serialize};

/// The data set's size and numbering; `prepare` and `run` must be given the
/// same values.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct DatasetArgs {
    /// Cards loaded (New) through /api/admin/cards.
    #[arg(long, default_value_t = 100_000)]
    pub cards: usize,
    /// Of them, the first N are issued, bound to a contact of their own,
    /// activated, and given bonuses.
    #[arg(long, default_value_t = 10_000)]
    pub active: usize,
    /// Contacts created: one per active card, plus contacts without a card
    /// for the first New cards (their customers register before the card is
    /// sold). Default: as many as --active.
    #[arg(long)]
    pub contacts: Option<usize>,
    /// Manual bonus lots per active card (each with its own expiry date).
    #[arg(long, default_value_t = 2)]
    pub bonuses_per_card: usize,
    /// Bonuses in each lot (whole points).
    #[arg(long, default_value_t = 100_000)]
    pub bonus_amount: u64,
    /// Active cards set aside for block/unblock (default: a tenth of
    /// --active, at least 64, at most half).
    #[arg(long)]
    pub cc_cards: Option<usize>,
    /// The hot set of write-heavy: the first N active cards.
    #[arg(long, default_value_t = 16)]
    pub hot_cards: usize,
    /// Number of card 0.
    #[arg(long, default_value_t = 7_100_000_000_000)]
    pub card_base: u64,
    /// Mobile number of card 0's contact.
    #[arg(long, default_value_t = 79_900_000_000)]
    pub mobile_base: u64,
}

/// The layout derived from [`DatasetArgs`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub args: DatasetArgs,
    pub cards: usize,
    pub active: usize,
    pub contacts: usize,
    pub hot: usize,
    /// Purchases use `0..purchase_end`.
    pub purchase_end: usize,
    /// The call centre uses `purchase_end..active`.
    pub cc_start: usize,
}

impl Dataset {
    pub fn new(args: &DatasetArgs) -> anyhow::Result<Dataset> {
        anyhow::ensure!(args.cards <= 10_000_000, "--cards: at most 10,000,000");
        anyhow::ensure!(
            args.active >= 4 && args.active <= args.cards,
            "--active must be at least 4 and at most --cards"
        );
        let contacts = args.contacts.unwrap_or(args.active).max(args.active);
        anyhow::ensure!(contacts <= args.cards, "--contacts must be at most --cards");
        let cc = args
            .cc_cards
            .unwrap_or((args.active / 10).max(64))
            .clamp(2, args.active / 2);
        let purchase_end = args.active - cc;
        Ok(Dataset {
            cards: args.cards,
            active: args.active,
            contacts,
            hot: args.hot_cards.clamp(1, purchase_end),
            purchase_end,
            cc_start: purchase_end,
            args: args.clone(),
        })
    }

    pub fn number(&self, i: usize) -> String {
        (self.args.card_base + i as u64).to_string()
    }

    pub fn mobile(&self, i: usize) -> String {
        (self.args.mobile_base + i as u64).to_string()
    }

    pub fn code(&self, i: usize) -> String {
        format!("LT-{}", self.number(i))
    }

    pub fn cc_cards(&self) -> std::ops::Range<usize> {
        self.cc_start..self.active
    }

    pub fn new_pool(&self) -> std::ops::Range<usize> {
        self.active..self.cards
    }

    /// The contact fields that make a card activatable (Name, BirthDate).
    pub fn contact_body(&self, i: usize) -> serde_json::Value {
        serde_json::json!({
            "Code": self.code(i),
            "Name": format!("Load Test {i}"),
            "MobileNumber": self.mobile(i),
            "BirthDate": "1990-01-01",
            "City": "Loadtown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        d: DatasetArgs,
    }

    #[test]
    fn ranges_do_not_overlap() {
        let p = P::parse_from(["x", "--cards", "1000", "--active", "100"]);
        let d = Dataset::new(&p.d).unwrap();
        assert_eq!(d.hot, 16);
        assert!(d.hot <= d.purchase_end);
        assert_eq!(d.cc_cards(), 50..100);
        assert_eq!(d.new_pool(), 100..1000);
        assert_eq!(d.number(3), "7100000000003");
        assert_eq!(d.mobile(3), "79900000003");
        assert_eq!(d.code(3), "LT-7100000000003");
    }
}
