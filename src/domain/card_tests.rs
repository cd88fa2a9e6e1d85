use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn actor(role: Role) -> Actor {
    Actor {
        login: format!("{}-1", role.as_str()),
        role,
    }
}

fn code(s: &str) -> ContactCode {
    ContactCode::parse(s).unwrap()
}

/// The six states the issue names, built through the state machine itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    IssuedUnbound,
    IssuedBound,
    Active,
    Blocked,
    BlockedForReplacement,
}

const STATES: [State; 6] = [
    State::New,
    State::IssuedUnbound,
    State::IssuedBound,
    State::Active,
    State::Blocked,
    State::BlockedForReplacement,
];

fn apply(card: &Card, change: Result<Change, RuleError>) -> Card {
    match change.unwrap() {
        Change::Changed { card, .. } => card,
        Change::Unchanged => card.clone(),
    }
}

fn card_in(state: State) -> Card {
    let admin = actor(Role::Administrator);
    let new = Card::new(
        CardNumber::from_trusted("1000001".into()),
        Category::Plastic,
        CardType::Bonus,
    );
    if state == State::New {
        return new;
    }
    let issued = apply(&new, new.issue(&admin, NOW));
    if state == State::IssuedUnbound {
        return issued;
    }
    let bound = apply(&issued, Ok(issued.bind(&code("c1"), None, &admin, NOW)));
    match state {
        State::IssuedBound => bound,
        State::Active => apply(&bound, bound.activate(true, &admin, NOW)),
        State::Blocked => apply(&bound, bound.block(&actor(Role::Client), "0", None, NOW)),
        State::BlockedForReplacement => apply(&bound, bound.block(&admin, "4", None, NOW)),
        State::New | State::IssuedUnbound => unreachable!(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Issue,
    BindSame,
    BindOther,
    ActiveSufficient,
    ActiveInsufficient,
    Block,
    UnblockSufficient,
    UnblockInsufficient,
}

/// Expected outcome: Ok(Some(status)) = changed to; Ok(None) = unchanged.
type Want = Result<Option<CardStatus>, ErrorKey>;

fn run(card: &Card, op: Op) -> Result<Option<CardStatus>, ErrorKey> {
    let admin = actor(Role::Administrator);
    let result = match op {
        Op::Issue => card.issue(&admin, NOW),
        Op::BindSame | Op::BindOther => {
            let contact = code(if matches!(op, Op::BindSame) {
                "c1"
            } else {
                "c2"
            });
            card.check_bind(&contact).map(|check| match check {
                BindCheck::AlreadyBound => Change::Unchanged,
                BindCheck::Bindable => card.bind(&contact, None, &admin, NOW),
            })
        }
        Op::ActiveSufficient => card.activate(true, &admin, NOW),
        Op::ActiveInsufficient => card.activate(false, &admin, NOW),
        Op::Block => card.block(&admin, "0", None, NOW),
        // The fixture blocks with reason 0 (lost) as a client, so "found" answers it.
        Op::UnblockSufficient => card.unblock(&admin, "0", None, true, NOW),
        Op::UnblockInsufficient => card.unblock(&admin, "0", None, false, NOW),
    };
    result
        .map(|c| match c {
            Change::Unchanged => None,
            Change::Changed { card, .. } => Some(card.status),
        })
        .map_err(|e| e.key)
}

#[test]
fn every_state_times_every_operation() {
    use CardStatus as S;
    use ErrorKey::*;
    let ok = |s| Ok(Some(s));
    let same: Want = Ok(None);
    let table: [(State, [Want; 8]); 6] = [
        //                         issue              bind same        bind other      active suff     active insuff  block             unblock suff  unblock insuff
        (
            State::New,
            [
                ok(S::Issued),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
            ],
        ),
        (
            State::IssuedUnbound,
            [
                same,
                ok(S::Issued),
                ok(S::Issued),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
            ],
        ),
        (
            State::IssuedBound,
            [
                same,
                same,
                Err(CardNumberBindToAnotherContact),
                ok(S::Active),
                Err(StatusError),
                ok(S::Blocked),
                Err(StatusError),
                Err(StatusError),
            ],
        ),
        (
            State::Active,
            [
                Err(StatusError),
                same,
                Err(CardNumberBindToAnotherContact),
                same,
                same,
                ok(S::Blocked),
                Err(StatusError),
                Err(StatusError),
            ],
        ),
        (
            State::Blocked,
            [
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                ok(S::Active),
                ok(S::Issued),
            ],
        ),
        (
            State::BlockedForReplacement,
            [
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(StatusError),
                Err(UnBlockReasonError),
                Err(UnBlockReasonError),
            ],
        ),
    ];
    let ops = [
        Op::Issue,
        Op::BindSame,
        Op::BindOther,
        Op::ActiveSufficient,
        Op::ActiveInsufficient,
        Op::Block,
        Op::UnblockSufficient,
        Op::UnblockInsufficient,
    ];
    assert_eq!(table.len(), STATES.len());
    for (state, row) in table {
        let card = card_in(state);
        for (op, want) in ops.iter().zip(row.iter()) {
            assert_eq!(&run(&card, *op), want, "{state:?} × {op:?}");
        }
    }
}

#[test]
fn block_records_who_why_when_and_from_what() {
    let card = card_in(State::Active);
    let director = actor(Role::Director);
    let Change::Changed {
        card: blocked,
        entry,
    } = card
        .block(&director, "2", Some("fraud".into()), NOW)
        .unwrap()
    else {
        panic!("block must change the card");
    };
    let info = blocked.block.unwrap();
    assert_eq!(info.reason, BlockReason::Blacklist);
    assert_eq!(info.login, director.login);
    assert_eq!(info.role, Role::Director);
    assert_eq!(info.previous, CardStatus::Active);
    assert_eq!(info.at, NOW);
    assert_eq!(
        (entry.from, entry.to),
        (CardStatus::Active, CardStatus::Blocked)
    );
    assert_eq!(entry.reason_code, Some(2));
    assert_eq!(entry.reason_name.as_deref(), Some("fraud"));
}

#[test]
fn block_checks_reason_before_status() {
    // A New card with a forbidden reason: the reason error wins.
    let card = card_in(State::New);
    let err = card
        .block(&actor(Role::Client), "2", None, NOW)
        .unwrap_err();
    assert_eq!(err.key, ErrorKey::BlockReasonError);
    let err = card
        .block(&actor(Role::Administrator), "9", None, NOW)
        .unwrap_err();
    assert_eq!(err.key, ErrorKey::BlockReasonError);
    assert!(err.message.contains("unknown"), "{}", err.message);
}

#[test]
fn unblock_checks_status_before_reason() {
    let card = card_in(State::Active);
    let err = card
        .unblock(&actor(Role::Client), "9", None, true, NOW)
        .unwrap_err();
    assert_eq!(err.key, ErrorKey::StatusError);
}

#[test]
fn only_an_administrator_unblocks_what_an_administrator_blocked() {
    let active = card_in(State::Active);
    let blocked = apply(
        &active,
        active.block(&actor(Role::Administrator), "0", None, NOW),
    );
    for role in Role::ALL {
        let result = blocked.unblock(&actor(role), "0", None, true, NOW);
        if role == Role::Administrator {
            assert!(result.is_ok());
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.key, ErrorKey::UnBlockReasonError, "{role:?}");
            assert!(err.message.contains("administrator"), "{}", err.message);
        }
    }
}

#[test]
fn the_unblock_reason_must_answer_the_block_reason() {
    for block_code in 0..=3u8 {
        let active = card_in(State::Active);
        let blocked = apply(
            &active,
            active
                .block(&actor(Role::Director), &block_code.to_string(), None, NOW)
                .or_else(|_| {
                    active.block(&actor(Role::CcOperator), &block_code.to_string(), None, NOW)
                }),
        );
        for unblock_code in 0..=3u8 {
            let result = blocked.unblock(
                &actor(Role::Director),
                &unblock_code.to_string(),
                None,
                true,
                NOW,
            );
            if block_code != unblock_code {
                assert_eq!(result.unwrap_err().key, ErrorKey::UnBlockReasonError);
            }
        }
    }
}

#[test]
fn replacement_is_final_for_every_role_and_reason() {
    let card = card_in(State::BlockedForReplacement);
    for role in Role::ALL {
        for code in ["0", "1", "2", "3"] {
            let err = card
                .unblock(&actor(role), code, None, true, NOW)
                .unwrap_err();
            assert_eq!(err.key, ErrorKey::UnBlockReasonError);
        }
    }
    assert!(card.is_blocked_for_replacement());
}

#[test]
fn mark_replaced_is_idempotent() {
    let card = card_in(State::BlockedForReplacement);
    let by = CardNumber::from_trusted("2000002".into());
    let admin = actor(Role::Administrator);
    let marked = apply(&card, Ok(card.mark_replaced(&by, &admin, NOW)));
    assert_eq!(marked.replaced_by.as_ref(), Some(&by));
    assert_eq!(marked.mark_replaced(&by, &admin, NOW), Change::Unchanged);
}

proptest! {
    /// Whatever sequence of operations and roles, the invariants of §4 hold:
    /// Active and Blocked cards are bound; only Blocked cards carry block
    /// info; a replacement block never goes away.
    #[test]
    fn random_operation_sequences_keep_the_invariants(
        steps in proptest::collection::vec((0usize..8, 0usize..7, 0u8..6), 0..40)
    ) {
        let mut card = card_in(State::New);
        let mut was_replaced = false;
        for (op, role, reason) in steps {
            let who = actor(Role::ALL[role]);
            let code_str = reason.to_string();
            let result = match op {
                0 => card.issue(&who, NOW),
                1 => card.check_bind(&code("c1")).map(|c| match c {
                    BindCheck::AlreadyBound => Change::Unchanged,
                    BindCheck::Bindable => card.bind(&code("c1"), None, &who, NOW),
                }),
                2 => card.check_bind(&code("c2")).map(|c| match c {
                    BindCheck::AlreadyBound => Change::Unchanged,
                    BindCheck::Bindable => card.bind(&code("c2"), None, &who, NOW),
                }),
                3 => card.activate(true, &who, NOW),
                4 => card.activate(false, &who, NOW),
                5 => card.block(&who, &code_str, None, NOW),
                6 => card.unblock(&who, &code_str, None, true, NOW),
                _ => card.unblock(&who, &code_str, None, false, NOW),
            };
            if let Ok(Change::Changed { card: next, entry }) = result {
                prop_assert_eq!(entry.from, card.status);
                prop_assert_eq!(entry.to, next.status);
                card = next;
            }
            if card.is_blocked_for_replacement() { was_replaced = true; }
            prop_assert_eq!(was_replaced, card.is_blocked_for_replacement());
            if matches!(card.status, CardStatus::Active | CardStatus::Blocked) {
                prop_assert!(card.is_bound());
            }
            prop_assert_eq!(card.block.is_some(), card.status == CardStatus::Blocked);
        }
    }
}
