//! The card lifecycle of docs/api.md §4, exhaustively: every starting status ×
//! every operation → the Key, and the status read back afterwards.

use serde_json::Value;

use crate::helpers::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Issue,
    /// To the card's own contact; a free contact when the card is unbound.
    BindSame,
    /// To a contact that holds no card.
    BindOther,
    ActiveSufficient,
    ActiveInsufficient,
    Block,
    UnblockSufficient,
    UnblockInsufficient,
}

const OPS: [Op; 8] = [
    Op::Issue,
    Op::BindSame,
    Op::BindOther,
    Op::ActiveSufficient,
    Op::ActiveInsufficient,
    Op::Block,
    Op::UnblockSufficient,
    Op::UnblockInsufficient,
];

/// What the contract says: (HTTP status, Key, card status afterwards).
fn expected(state: State, op: Op) -> (u16, &'static str, &'static str) {
    use Op::*;
    use State::*;
    const STATUS: (u16, &str) = (409, "StatusError");
    let (s, k) = STATUS;
    match (state, op) {
        (New, Issue) => (200, "OK", "1"),
        (New, _) => (s, k, "0"),

        (IssuedUnbound, Issue) => (200, "OK", "1"),
        (IssuedUnbound, BindSame | BindOther) => (200, "OK", "1"),
        (IssuedUnbound, _) => (s, k, "1"),

        (IssuedBound, Issue) => (200, "OK", "1"),
        (IssuedBound, BindSame) => (200, "OK", "1"),
        (IssuedBound, BindOther) => (409, "CardNumberBindToAnotherContact", "1"),
        (IssuedBound, ActiveSufficient) => (200, "OK", "2"),
        (IssuedBound, ActiveInsufficient) => (s, k, "1"),
        (IssuedBound, Block) => (200, "OK", "3"),
        (IssuedBound, UnblockSufficient | UnblockInsufficient) => (s, k, "1"),

        (Active, Issue) => (s, k, "2"),
        (Active, BindSame) => (200, "OK", "2"),
        (Active, BindOther) => (409, "CardNumberBindToAnotherContact", "2"),
        (Active, ActiveSufficient | ActiveInsufficient) => (200, "OK", "2"),
        (Active, Block) => (200, "OK", "3"),
        (Active, UnblockSufficient | UnblockInsufficient) => (s, k, "2"),

        (Blocked, UnblockSufficient) => (200, "OK", "2"),
        (Blocked, UnblockInsufficient) => (200, "OK", "1"),
        (Blocked, _) => (s, k, "3"),

        (BlockedForReplacement, UnblockSufficient | UnblockInsufficient) => {
            (403, "UnBlockReasonError", "3")
        }
        (BlockedForReplacement, _) => (s, k, "3"),
    }
}

/// Runs one cell; `Err` describes what differs from the contract.
async fn run_cell(app: &TestApp, state: State, op: Op) -> Result<(), String> {
    let (number, own) = app.card_in(state).await;
    let insufficient = matches!(op, Op::ActiveInsufficient | Op::UnblockInsufficient);
    if insufficient {
        if let Some(c) = &own {
            // Clear the name: the contact's data is no longer sufficient.
            app.update_contact(&c.code, "", "1990-01-31").await;
        }
    }
    let free = app.new_contact(true).await;
    let (r, target) = match op {
        Op::Issue => (app.issue(ADMIN, &number).await, None),
        Op::BindSame => {
            let c = own.clone().unwrap_or_else(|| free.clone());
            (app.bindto(ADMIN, &number, &c.mobile).await, Some(c))
        }
        Op::BindOther => (
            app.bindto(ADMIN, &number, &free.mobile).await,
            Some(free.clone()),
        ),
        Op::ActiveSufficient | Op::ActiveInsufficient => (app.active(ADMIN, &number).await, None),
        Op::Block => (app.block(ADMIN, &number, "0").await, None),
        Op::UnblockSufficient | Op::UnblockInsufficient => {
            (app.unblock(ADMIN, &number, "0").await, None)
        }
    };
    let (want_http, want_key, want_status) = expected(state, op);
    let mut errors = Vec::new();
    if (r.status, r.key()) != (want_http, want_key) {
        errors.push(format!(
            "answered {} {} (want {want_http} {want_key}): {}",
            r.status,
            r.key(),
            r.body
        ));
    }
    let view: Value = app.card_view(&number).await;
    if view["StatusCode"] != want_status {
        errors.push(format!(
            "status {} (want {want_status})",
            view["StatusCode"]
        ));
    }
    // Who the card is bound to afterwards: its own contact, or the target of
    // a successful bind of an unbound card, or no one.
    let bound_to = match (&own, &target) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(t)) if want_key == "OK" => Some(t.clone()),
        _ => None,
    };
    let want_mobile = bound_to.as_ref().map_or("", |c| c.mobile.as_str());
    if view["MobileNumber"] != want_mobile {
        errors.push(format!(
            "bound to {} (want {want_mobile:?})",
            view["MobileNumber"]
        ));
    }
    let blocked_fields = view.get("BlockReasonCode").is_some();
    if blocked_fields != (want_status == "3") {
        errors.push(format!("block fields present: {blocked_fields}: {view}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[tokio::test]
async fn every_status_times_every_operation_follows_the_lifecycle() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for state in ALL_STATES {
        for op in OPS {
            if let Err(e) = run_cell(&app, state, op).await {
                failures.push(format!("[{state:?} × {op:?}] {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) differ from docs/api.md §4:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
