use super::*;
use proptest::prelude::*;
use time::macros::date;

const TODAY: Date = date!(2026 - 11 - 28);

fn amt(h: i64) -> Amount {
    Amount::from_hundredths(h).unwrap()
}

fn day(offset: i64) -> Date {
    TODAY + time::Duration::days(offset)
}

fn bucket_sum(buckets: &[Bucket], status: BonusStatus) -> i64 {
    buckets
        .iter()
        .filter(|b| b.status == status)
        .map(|b| b.amount.hundredths())
        .sum()
}

#[test]
fn buckets_as_of_today() {
    let mut l = Ledger::default();
    l.accrue(
        amt(1000),
        BonusType::Cash,
        day(-10),
        Some(day(5)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(300),
        BonusType::Cash,
        day(-10),
        Some(day(5)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(200),
        BonusType::Cash,
        day(-10),
        Some(day(30)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(400),
        BonusType::Cash,
        day(3),
        Some(day(60)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(50),
        BonusType::Cash,
        day(-100),
        Some(day(-1)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(70),
        BonusType::Status,
        day(-1),
        None,
        LotSource::Purchase,
    );
    let b = l.buckets(TODAY, false);
    let find = |s, t| {
        b.iter()
            .find(|x| x.status == s && x.bonus_type == t)
            .cloned()
    };
    assert_eq!(
        find(BonusStatus::Active, BonusType::Cash).unwrap().amount,
        amt(1500)
    );
    assert_eq!(
        find(BonusStatus::Inactive, BonusType::Cash).unwrap().amount,
        amt(400)
    );
    assert_eq!(
        find(BonusStatus::Burnt, BonusType::Cash).unwrap().amount,
        amt(50)
    );
    let nearest = find(BonusStatus::NearestExpiring, BonusType::Cash).unwrap();
    assert_eq!(
        (nearest.amount, nearest.expire_date),
        (amt(1300), Some(day(5)))
    );
    assert_eq!(
        find(BonusStatus::Active, BonusType::Status).unwrap().amount,
        amt(70)
    );
    assert!(find(BonusStatus::NearestExpiring, BonusType::Status).is_none());
    // The last usable day is the expiry date itself.
    assert_eq!(l.usable(day(5)), amt(1500 + 400 + 70));
    assert_eq!(l.usable(day(6)), amt(200 + 400 + 70));

    let frozen = l.buckets(TODAY, true);
    assert_eq!(bucket_sum(&frozen, BonusStatus::Frozen), 1500 + 400 + 70);
    assert_eq!(bucket_sum(&frozen, BonusStatus::Active), 0);
    assert_eq!(bucket_sum(&frozen, BonusStatus::Burnt), 50);
}

#[test]
fn write_off_takes_nearest_expiring_first_and_is_all_or_nothing() {
    let mut l = Ledger::default();
    l.accrue(
        amt(500),
        BonusType::Cash,
        day(-1),
        Some(day(90)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(500),
        BonusType::Cash,
        day(-1),
        None,
        LotSource::Purchase,
    );
    l.accrue(
        amt(500),
        BonusType::Cash,
        day(-1),
        Some(day(2)),
        LotSource::Purchase,
    );
    let taken = l.write_off(amt(700), TODAY).unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|a| (a.expires, a.amount))
            .collect::<Vec<_>>(),
        vec![(Some(day(2)), amt(500)), (Some(day(90)), amt(200))]
    );
    let before = l.clone();
    assert_eq!(
        l.write_off(amt(801), TODAY).unwrap_err().key,
        ErrorKey::InsufficientBonuses
    );
    assert_eq!(l, before);
    let taken = l.write_off(amt(800), TODAY).unwrap();
    assert_eq!(taken.last().unwrap().expires, None);
    assert_eq!(l.usable(TODAY), Amount::ZERO);
}

#[test]
fn lots_of_the_same_dates_merge_but_never_past_the_largest_amount() {
    let mut l = Ledger::default();
    l.accrue(
        amt(100),
        BonusType::Cash,
        day(0),
        Some(day(9)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(200),
        BonusType::Cash,
        day(0),
        Some(day(9)),
        LotSource::Purchase,
    );
    l.accrue(
        amt(50),
        BonusType::Cash,
        day(0),
        Some(day(9)),
        LotSource::Bonus,
    );
    l.accrue(
        amt(70),
        BonusType::Status,
        day(0),
        Some(day(9)),
        LotSource::Purchase,
    );
    let amounts: Vec<i64> = l.lots.iter().map(|x| x.amount.hundredths()).collect();
    assert_eq!(amounts, [300, 50, 70]);
    // Two near-maximum accruals of one date: two lots, nothing clamped.
    let mut big = Ledger::default();
    let max = Amount::MAX.hundredths();
    big.accrue(
        amt(max - 1),
        BonusType::Cash,
        day(0),
        None,
        LotSource::Bonus,
    );
    big.accrue(
        amt(max - 1),
        BonusType::Cash,
        day(0),
        None,
        LotSource::Bonus,
    );
    big.accrue(amt(1), BonusType::Cash, day(0), None, LotSource::Bonus);
    let amounts: Vec<i64> = big.lots.iter().map(|x| x.amount.hundredths()).collect();
    assert_eq!(amounts, [max, max - 1]);
}

#[test]
fn restored_write_offs_keep_their_dates_and_burn_if_expired() {
    let mut l = Ledger::default();
    l.accrue(
        amt(500),
        BonusType::Cash,
        day(-10),
        Some(day(1)),
        LotSource::Purchase,
    );
    let taken = l.write_off(amt(500), TODAY).unwrap();
    l.restore(&taken);
    assert_eq!(l.usable(TODAY), amt(500));
    // Two days later the restored bonuses have expired: Burnt.
    assert_eq!(l.usable(day(2)), Amount::ZERO);
    assert_eq!(l.burnt_total(day(2)), amt(500));
}

#[test]
fn transfer_moves_unburnt_lots_with_their_dates() {
    let mut old = Ledger::default();
    old.accrue(
        amt(100),
        BonusType::Cash,
        day(-5),
        Some(day(5)),
        LotSource::Purchase,
    );
    old.accrue(
        amt(200),
        BonusType::Status,
        day(5),
        Some(day(50)),
        LotSource::Purchase,
    );
    old.accrue(
        amt(300),
        BonusType::Cash,
        day(-50),
        Some(day(-5)),
        LotSource::Purchase,
    );
    let mut new = Ledger::default();
    new.receive(old.take_all_unburnt(TODAY), Amount::ZERO, TODAY);
    assert_eq!(old.unburnt(TODAY), Amount::ZERO);
    assert_eq!(old.burnt_total(TODAY), amt(300));
    assert_eq!(new.usable(TODAY), amt(100));
    assert_eq!(new.unburnt(TODAY), amt(300));
    assert_eq!(new.lots[1].active_from, day(5));
}

fn arb_ledger() -> impl Strategy<Value = Ledger> {
    proptest::collection::vec(
        (
            1i64..100_000,
            0u8..2,
            -60i64..60,
            proptest::option::of(-30i64..120),
        ),
        0..12,
    )
    .prop_map(|lots| {
        let mut l = Ledger::default();
        for (h, t, from, exp) in lots {
            let from = day(from);
            let expires = exp.map(|e| from + time::Duration::days(e.abs()));
            l.accrue(
                amt(h),
                BonusType::from_code(t).unwrap(),
                from,
                expires,
                LotSource::Bonus,
            );
        }
        l
    })
}

proptest! {
    /// Every unit is in exactly one place: still on a lot, burnt, or
    /// written off. Nothing is created, nothing goes negative.
    #[test]
    fn write_offs_conserve_the_total(mut l in arb_ledger(), asks in proptest::collection::vec(0i64..200_000, 0..6)) {
        let total = |l: &Ledger| l.unburnt(TODAY).hundredths() + l.burnt_total(TODAY).hundredths();
        let start = total(&l);
        let mut spent = 0;
        for ask in asks {
            let usable = l.usable(TODAY);
            match l.write_off(amt(ask), TODAY) {
                Ok(taken) => {
                    let got: i64 = taken.iter().map(|a| a.amount.hundredths()).sum();
                    prop_assert_eq!(got, ask);
                    prop_assert_eq!(l.usable(TODAY).hundredths(), usable.hundredths() - ask);
                    spent += got;
                }
                Err(e) => {
                    prop_assert_eq!(e.key, ErrorKey::InsufficientBonuses);
                    prop_assert!(ask > usable.hundredths());
                }
            }
            prop_assert!(l.lots.iter().all(|lot| lot.amount > Amount::ZERO));
            prop_assert_eq!(total(&l) + spent, start);
        }
    }

    /// After a write-off, no Active lot left over expires before the last
    /// lot the write-off touched.
    #[test]
    fn nearest_expiring_lots_go_first(mut l in arb_ledger(), ask in 1i64..100_000) {
        let Ok(taken) = l.write_off(amt(ask), TODAY) else { return Ok(()); };
        let last = taken.last().unwrap();
        let last_key = (last.expires.is_none(), last.expires, last.active_from);
        for lot in l.lots.iter().filter(|lot| lot.is_active(TODAY)) {
            prop_assert!(lot.spend_order() >= last_key);
        }
        // Every part but the last used its lot up: no lot of its dates and
        // type that sorts before the last part is left.
        for a in &taken[..taken.len() - 1] {
            let key = (a.expires.is_none(), a.expires, a.active_from);
            if key < last_key {
                prop_assert!(
                    !l.lots.iter().any(|lot| lot.bonus_type == a.bonus_type && lot.spend_order() == key && lot.is_active(TODAY)),
                    "a lot before the last is used up"
                );
            }
        }
    }

    /// Lots are merged: no two share type, dates and source, whatever was
    /// accrued, written off, given back or received; and merging changes no
    /// balance (a ledger of one lot per accrual answers the same).
    #[test]
    fn lots_are_distinct_by_type_dates_and_source(
        accruals in proptest::collection::vec((1i64..10_000, 0u8..2, -3i64..3, 0i64..3, 0u8..2), 0..40),
        ask in 0i64..100_000,
    ) {
        let mut merged = Ledger::default();
        let mut apart = Ledger::default();
        for (h, t, from, len, src) in accruals.iter() {
            let t = BonusType::from_code(*t).unwrap();
            let from = day(*from);
            let expires = Some(from + time::Duration::days(*len));
            let src = if *src == 0 { LotSource::Purchase } else { LotSource::Bonus };
            merged.accrue(amt(*h), t, from, expires, src);
            // One lot per accrual, as if lots were never merged.
            apart.lots.push(Lot { bonus_type: t, amount: amt(*h), active_from: from, expires, source: src });
        }
        prop_assert_eq!(merged.buckets(TODAY, false), apart.buckets(TODAY, false));
        let a = merged.write_off(amt(ask), TODAY).map(|t| t.iter().map(|x| x.amount.hundredths()).sum::<i64>());
        let b = apart.write_off(amt(ask), TODAY).map(|t| t.iter().map(|x| x.amount.hundredths()).sum::<i64>());
        prop_assert_eq!(a.is_ok(), b.is_ok());
        // Lots of equal dates but another type or source may go in another
        // order (ties keep the lots' order), so only the totals must agree.
        prop_assert_eq!(merged.usable(TODAY), apart.usable(TODAY));
        prop_assert_eq!(merged.unburnt(TODAY), apart.unburnt(TODAY));
        if let Ok(taken) = merged.write_off(amt(ask / 2), TODAY) {
            merged.restore(&taken);
        }
        let mut keys: Vec<_> = merged.lots.iter().map(|l| (l.bonus_type.code(), l.active_from, l.expires, l.source)).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), n);
        prop_assert!(n <= 2 * 6 * 3 * 3, "bounded by the distinct keys");
    }

    /// Write-off then restore gives the same balance back (same day).
    #[test]
    fn restore_undoes_a_write_off(mut l in arb_ledger(), ask in 0i64..100_000) {
        let before = l.buckets(TODAY, false);
        if let Ok(taken) = l.write_off(amt(ask), TODAY) {
            l.restore(&taken);
            prop_assert_eq!(l.buckets(TODAY, false), before);
        }
    }

    /// The buckets add up: Active + Inactive (or Frozen) + Burnt is
    /// everything; Nearest expiring is part of Active; compaction changes
    /// nothing visible.
    #[test]
    fn buckets_add_up_and_survive_compaction(mut l in arb_ledger(), frozen in any::<bool>()) {
        let b = l.buckets(TODAY, frozen);
        let visible = bucket_sum(&b, BonusStatus::Active) + bucket_sum(&b, BonusStatus::Inactive)
            + bucket_sum(&b, BonusStatus::Frozen) + bucket_sum(&b, BonusStatus::Burnt);
        prop_assert_eq!(visible, l.unburnt(TODAY).hundredths() + l.burnt_total(TODAY).hundredths());
        for t in BonusType::ALL {
            let of = |s| b.iter().filter(|x| x.status == s && x.bonus_type == *t).map(|x| x.amount.hundredths()).sum::<i64>();
            prop_assert!(of(BonusStatus::NearestExpiring) <= of(BonusStatus::Active));
        }
        prop_assert!(b.iter().all(|x| x.amount > Amount::ZERO));
        l.compact(TODAY);
        prop_assert_eq!(l.buckets(TODAY, frozen), b);
    }

    /// Reversing an accrual never takes more than is there.
    #[test]
    fn take_back_never_overdraws(mut l in arb_ledger(), ask in 0i64..500_000) {
        let unburnt = l.unburnt(TODAY).hundredths();
        let taken: i64 = l.take_back(amt(ask), TODAY).iter().map(|a| a.amount.hundredths()).sum();
        prop_assert_eq!(taken, ask.min(unburnt));
        prop_assert_eq!(l.unburnt(TODAY).hundredths(), unburnt - taken);
    }
}
