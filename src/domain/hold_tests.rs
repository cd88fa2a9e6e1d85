use std::collections::BTreeMap;

use super::*;
use crate::domain::ids::CardNumber;
use crate::domain::ledger::LotSource;
use crate::domain::policy::Actor;
use crate::domain::reference::{CardStatus, CardType, Category, Role};
use proptest::prelude::*;
use time::macros::datetime;
use time::Duration;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn amt(h: i64) -> Amount {
    Amount::from_hundredths(h).unwrap()
}

fn rules(accrual_bp: i64) -> BonusRules {
    BonusRules {
        accrual_bp,
        activation_delay_days: 14,
        expiry_days: 365,
        max_writeoff_bp: 10_000,
        discount_bp: 0,
        date_max_age_secs: 30 * 86_400,
        date_max_ahead_secs: 86_400,
    }
}

fn today() -> Date {
    NOW.date()
}

/// An Active card with a lot expiring tomorrow and one in 60 days.
fn card() -> Card {
    let mut card = Card::new(
        CardNumber::from_trusted("4000000000001".into()),
        Category::Plastic,
        CardType::Bonus,
    );
    card.status = CardStatus::Active;
    card.contact = Some(crate::domain::ContactCode::parse("C-1").unwrap());
    card.ledger.accrue(
        amt(1_000),
        BonusType::Cash,
        today() - Duration::days(30),
        Some(today() + Duration::days(1)),
        LotSource::Bonus,
    );
    card.ledger.accrue(
        amt(5_000),
        BonusType::Cash,
        today() - Duration::days(30),
        Some(today() + Duration::days(60)),
        LotSource::Purchase,
    );
    card
}

fn bucket(card: &Card, now: OffsetDateTime, status: BonusStatus) -> Amount {
    Amount::total(
        card.buckets(now, false)
            .iter()
            .filter(|b| b.status == status)
            .map(|b| b.amount),
    )
    .unwrap()
}

fn take(card: &mut Card, id: &str, bonus: i64, secs: i64) -> Result<Taken, RuleError> {
    hold(
        &rules(0),
        card,
        id,
        "owner",
        amt(100_000),
        amt(bonus),
        NOW + Duration::seconds(secs),
        today(),
    )
}

#[test]
fn a_hold_reserves_nearest_expiring_first_and_is_not_active() {
    let mut c = card();
    take(&mut c, "P1", 1_500, 900).unwrap();
    // All of the lot expiring tomorrow, then 5.00 of the later one.
    let h = &c.holds[0];
    assert_eq!(h.lots.len(), 2);
    assert_eq!(h.lots[0].expires, Some(today() + Duration::days(1)));
    assert_eq!(h.lots[0].amount, amt(1_000));
    assert_eq!(h.lots[1].amount, amt(500));
    assert_eq!(bucket(&c, NOW, BonusStatus::Held), amt(1_500));
    assert_eq!(bucket(&c, NOW, BonusStatus::Active), amt(4_500));
    // What is held cannot be held again.
    let e = take(&mut c, "P2", 4_501, 900).unwrap_err();
    assert_eq!(e.key, ErrorKey::InsufficientBonuses);
}

#[test]
fn a_card_has_at_most_max_open_holds_and_an_expired_one_makes_room() {
    let mut c = card();
    for i in 0..MAX_OPEN_HOLDS {
        take(&mut c, &format!("P{i}"), 1, 900 + i as i64).unwrap();
    }
    let before = c.clone();
    let e = take(&mut c, "one-more", 1, 900).unwrap_err();
    assert_eq!(e.key, ErrorKey::StatusError);
    assert!(e.message.contains("open holds"), "{}", e.message);
    assert_eq!(c, before, "a refused hold changes nothing");
    // Once the first has expired (freed before a hold is taken), there is room.
    c.free_expired_holds(NOW + Duration::seconds(900));
    take(&mut c, "one-more", 1, 1_800).unwrap();
}

#[test]
fn an_expired_hold_counts_as_freed_with_nothing_written() {
    let mut c = card();
    let before = c.buckets(NOW, false);
    take(&mut c, "P1", 1_500, 900).unwrap();
    let later = NOW + Duration::seconds(900);
    assert_eq!(bucket(&c, later, BonusStatus::Held), Amount::ZERO);
    assert_eq!(c.buckets(later, false), before);
    // And a hold of that time finds them usable.
    let mut at_later = c.clone();
    at_later.free_expired_holds(later);
    assert_eq!(at_later.ledger.usable(today()), amt(6_000));
    assert!(at_later.holds.is_empty());
}

/// The lots, in a stable order (a lot emptied by a hold comes back last).
fn sorted(card: &Card) -> Vec<Lot> {
    let mut lots = card.ledger.lots.clone();
    lots.sort_by_key(Lot::spend_order);
    lots
}

#[test]
fn a_release_gives_the_bonuses_back_to_their_very_lots() {
    let mut c = card();
    let before = c.clone();
    take(&mut c, "P1", 1_500, 900).unwrap();
    let h = c.release_hold("P1").unwrap();
    assert_eq!(h.held(), amt(1_500));
    assert_eq!(sorted(&c), sorted(&before));
    assert!(c.release_hold("P1").is_none());
}

#[test]
fn a_confirm_writes_off_from_the_hold_and_frees_the_rest() {
    let mut c = card();
    take(&mut c, "P1", 1_500, 900).unwrap();
    let h = c.release_hold_for_confirm("P1");
    let rec = confirm_held(&rules(0), &mut c, h, amt(1_200), today(), today()).unwrap();
    assert_eq!(rec.bonus_paid, amt(1_200));
    // The nearest-expiring lot first, as a plain confirm takes them.
    assert_eq!(rec.writeoffs[0].amount, amt(1_000));
    assert_eq!(rec.writeoffs[1].amount, amt(200));
    assert_eq!(c.ledger.usable(today()), amt(4_800));
    assert!(c.holds.is_empty());
}

#[test]
fn a_held_lot_that_expires_while_held_is_still_confirmed_but_burns_if_released() {
    let mut c = card();
    take(&mut c, "P1", 1_000, 900).unwrap();
    // Two days on, the lot the hold took from has expired.
    let day_after = today() + Duration::days(2);
    let mut confirmed = c.clone();
    let h = confirmed.release_hold_for_confirm("P1");
    let rec = confirm_held(
        &rules(0),
        &mut confirmed,
        h,
        amt(1_000),
        day_after,
        day_after,
    )
    .expect("the hold's bonuses stay promised");
    assert_eq!(rec.bonus_paid, amt(1_000));
    let mut released = c.clone();
    released.release_hold("P1");
    assert_eq!(released.ledger.burnt_total(day_after), amt(1_000));
}

#[test]
fn a_block_releases_the_holds() {
    let mut c = card();
    take(&mut c, "P1", 1_500, 900).unwrap();
    let actor = Actor {
        login: "op".into(),
        role: Role::Administrator,
    };
    let crate::domain::card::Change::Changed { card: blocked, .. } =
        c.block(&actor, "0", None, NOW).unwrap()
    else {
        panic!("a change")
    };
    assert!(blocked.holds.is_empty());
    assert_eq!(sorted(&blocked), sorted(&card()));
    let frozen = blocked.buckets(NOW, true);
    assert_eq!(
        (frozen[0].status, frozen[0].amount),
        (BonusStatus::Frozen, amt(6_000)),
        "held bonuses are Frozen with the rest"
    );
}

impl Card {
    /// A test's way to take a hold out as the engine does for a confirm.
    fn release_hold_for_confirm(&mut self, id: &str) -> Hold {
        let at = self.holds.iter().position(|h| h.purchase_id == id).unwrap();
        self.holds.remove(at)
    }
}

#[derive(Debug, Clone)]
enum Step {
    Hold {
        id: u8,
        bonus: i64,
        secs: i64,
    },
    /// A confirm: consumes its open hold when it covers it, else plain.
    Confirm {
        id: u8,
        bonus: i64,
    },
    Release {
        id: u8,
    },
    /// Time passes (holds and lots expire).
    Wait {
        secs: i64,
    },
    Block,
    Unblock,
    Refund {
        id: u8,
        percent: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 0i64..4_000, 1i64..3_600).prop_map(|(id, bonus, secs)| Step::Hold {
            id,
            bonus,
            secs
        }),
        (0u8..4, 0i64..4_000).prop_map(|(id, bonus)| Step::Confirm { id, bonus }),
        (0u8..4).prop_map(|id| Step::Release { id }),
        (1i64..200_000).prop_map(|secs| Step::Wait { secs }),
        Just(Step::Block),
        Just(Step::Unblock),
        (0u8..4, 1i64..=100).prop_map(|(id, percent)| Step::Refund { id, percent }),
    ]
}

/// Everything in the card's record and what left it by write-offs.
fn accounted(card: &Card, records: &BTreeMap<u8, PurchaseRecord>) -> i64 {
    let in_record = card.bonus_total().hundredths();
    let written_off: i64 = records
        .values()
        .map(|r| r.bonus_paid.hundredths() - r.bonus_returned.hundredths())
        .sum();
    in_record + written_off
}

proptest! {
    /// Any interleaving of hold, confirm, release, expiry (time passing),
    /// block and refund keeps Active + Inactive + Burnt + Held + written
    /// off equal to what was accrued (no accrual here: purchases earn
    /// nothing, so every bonus is one of the two initial lots'), and the
    /// balance's buckets as of any time add up to the card's bonuses.
    #[test]
    fn holds_never_create_or_lose_bonuses(steps in prop::collection::vec(step(), 1..40)) {
        let rules = rules(0);
        let accrued = card().bonus_total().hundredths();
        let mut c = card();
        let mut now = NOW;
        let mut records: BTreeMap<u8, PurchaseRecord> = BTreeMap::new();
        let actor = Actor { login: "op".into(), role: Role::Administrator };
        for s in steps {
            let today = now.date();
            // What the engine does first on any copy it writes from.
            c.free_expired_holds(now);
            let mut next = c.clone();
            let ok = match s {
                Step::Hold { id, bonus, secs } => {
                    let pid = id.to_string();
                    !records.contains_key(&id)
                        && hold(&rules, &mut next, &pid, "o", amt(10_000), amt(bonus),
                            now + Duration::seconds(secs), today).is_ok()
                }
                Step::Confirm { id, bonus } => match records.entry(id) {
                    std::collections::btree_map::Entry::Occupied(_) => false,
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let pid = id.to_string();
                        let covering = next
                            .open_hold(&pid, now)
                            .is_some_and(|h| h.covers(amt(10_000), amt(bonus)));
                        let done = if covering {
                            let h = next.release_hold_for_confirm(&pid);
                            confirm_held(&rules, &mut next, h, amt(bonus), today, today)
                        } else {
                            next.release_hold(&pid);
                            purchase::confirm(&rules, &mut next, amt(10_000), amt(bonus), today, today)
                        };
                        done.map(|r| slot.insert(r)).is_ok()
                    }
                },
                Step::Release { id } => next.release_hold(&id.to_string()).is_some(),
                Step::Wait { secs } => {
                    now += Duration::seconds(secs);
                    false
                }
                Step::Block => match next.block(&actor, "0", None, now) {
                    Ok(crate::domain::card::Change::Changed { card, .. }) => {
                        next = card;
                        true
                    }
                    _ => false,
                },
                Step::Unblock => match next.unblock(&actor, "0", None, true, now) {
                    Ok(crate::domain::card::Change::Changed { card, .. }) => {
                        next = card;
                        true
                    }
                    _ => false,
                },
                Step::Refund { id, percent } => match records.get_mut(&id) {
                    Some(r) => {
                        let left = r.amount.saturating_sub(r.refunded).hundredths();
                        let part = (left * percent / 100).max(1).min(left);
                        part > 0
                            && purchase::refund(&mut next, r, amt(part), today).is_ok()
                    }
                    None => false,
                },
            };
            if ok {
                c = next;
            }
            prop_assert_eq!(accounted(&c, &records), accrued);
            // The balance as of now: every bonus in exactly one bucket.
            let frozen = c.status == CardStatus::Blocked;
            let stated: i64 = c
                .buckets(now, frozen)
                .iter()
                .filter(|b| b.status != BonusStatus::NearestExpiring)
                .map(|b| b.amount.hundredths())
                .sum();
            prop_assert_eq!(stated, c.bonus_total().hundredths());
            // Held never exceeds what was reserved, nor is it usable.
            let mut freed = c.clone();
            freed.free_expired_holds(now);
            prop_assert_eq!(freed.held(now), c.held(now));
        }
    }
}
