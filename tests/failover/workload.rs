//! The traffic of the failover scenarios and what is checked after it.
//!
//! Cards are set up Active with a seed bonus; then tills, each its own task,
//! cycle confirm (paying 1 bonus) → manual bonus → refund of that confirm
//! over cards they share with the other tills, through both instances,
//! until told to stop. Every operation has its own idempotency key and is
//! retried as a till does ([`Till::send`]). Afterwards [`verify`] reads
//! every card back through both instances.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::till::{Op, Outcome, Till, ADMIN, POS};

/// What the cards start with (manual bonus `seed-<card>`), enough that a
/// write-off of 1 a confirm never runs short.
const SEED_BONUS: u32 = 1000;

/// Card numbers unique to this process and `run` (13 digits).
pub fn cards(run: u64, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{:013}",
                6_000_000_000_000u64 + u64::from(std::process::id()) * 100_000 + run * 1_000 + i
            )
        })
        .collect()
}

/// Loads, issues, binds (to a new contact) and activates every card, and
/// credits its seed bonus.
pub async fn set_up(till: &Till, cards: &[String]) {
    let list: Vec<Value> = cards
        .iter()
        .map(|n| json!({"Number": n, "CategoryCode": "0", "TypeCode": "0"}))
        .collect();
    let load = Op {
        login: ADMIN,
        path: "/api/admin/cards",
        body: Value::Array(list),
        card: String::new(),
        operation: "",
        reference: String::new(),
    };
    expect_ok(&till.send(&load, 0).await, "load cards");
    join_all(cards.iter().enumerate().map(|(i, card)| async move {
        let mobile = format!("79{:09}", card[4..].parse::<u64>().unwrap_or(0) % 1_000_000_000);
        let steps = [
            step(ADMIN, "/api/card/issue", json!({"Number": card})),
            step(
                POS,
                "/api/contact",
                json!({"Code": format!("FO-{card}"), "MobileNumber": mobile, "Name": "Test Person", "BirthDate": "1990-01-31"}),
            ),
            step(
                ADMIN,
                "/api/card/bindto",
                json!({"Number": card, "MobileNumber": mobile}),
            ),
            step(ADMIN, "/api/card/active", json!({"Number": card})),
            Op::bonus(card, &format!("seed-{card}"), SEED_BONUS),
        ];
        for s in steps {
            expect_ok(&till.send(&s, i).await, s.path);
        }
    }))
    .await;
}

fn step(login: &'static str, path: &'static str, body: Value) -> Op {
    Op {
        login,
        path,
        body,
        card: String::new(),
        operation: "",
        reference: String::new(),
    }
}

#[track_caller]
fn expect_ok(o: &Outcome, what: &str) {
    assert!(o.ok(), "{what}: {:?} {}", o.status, o.body);
}

/// Everything the tills did.
#[derive(Default)]
pub struct Traffic {
    /// Operations answered 200 OK, with that answer.
    pub acked: Vec<(Op, Outcome)>,
    /// Operations without any outcome when their till gave up: applied at
    /// most once, maybe not at all.
    pub unresolved: Vec<Op>,
    /// Final answers that were neither OK nor "no outcome": none expected.
    pub refused: Vec<(Op, Outcome)>,
}

impl Traffic {
    pub fn attempts_without_outcome(&self) -> u64 {
        self.acked
            .iter()
            .chain(&self.refused)
            .map(|(_, o)| u64::from(o.no_outcome))
            .sum()
    }

    pub fn unavailable_answers(&self) -> u64 {
        self.acked
            .iter()
            .chain(&self.refused)
            .map(|(_, o)| u64::from(o.unavailable))
            .sum()
    }

    /// The first write acknowledged on one of `cards` whose successful
    /// attempt was sent after `since`: how long after `since` it came.
    pub fn first_write_after(
        &self,
        since: Instant,
        cards: &HashSet<String>,
    ) -> Option<std::time::Duration> {
        self.acked
            .iter()
            .filter(|(op, o)| cards.contains(&op.card) && o.sent >= since)
            .map(|(_, o)| o.done - since)
            .min()
    }
}

/// Runs `tills` tills over `cards` until `stop` is set; `run` keeps the
/// idempotency keys of separate runs apart.
pub async fn drive(
    till: &Till,
    cards: &[String],
    tills: usize,
    run: u64,
    stop: Arc<AtomicBool>,
) -> Traffic {
    let per_till = join_all((0..tills).map(|t| {
        let stop = stop.clone();
        async move {
            let mut traffic = Traffic::default();
            let mut last_purchase: Option<(String, String)> = None;
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let card = &cards[(i * tills + t) % cards.len()];
                let key = format!("fo{}-{run}-{t}-{i}", std::process::id());
                let op = match (i % 3, &last_purchase) {
                    (1, _) => Op::bonus(card, &key, 5),
                    (2, Some((card, pid))) => Op::refund(card, pid, &key, 10),
                    _ => Op::confirm(card, &key, 100, 1),
                };
                if op.operation == "purchase" {
                    // A till shows the balance before it sells: reads fill
                    // the instances' caches, which a failover must not
                    // leave stale. Its answer is not judged here.
                    let _ = till
                        .request(
                            t + i + 1,
                            POS,
                            &format!("/api/card/balance/by/{card}"),
                            None,
                        )
                        .await;
                }
                let outcome = till.send(&op, t + i).await;
                if op.operation == "purchase" {
                    last_purchase = outcome
                        .ok()
                        .then(|| (op.card.clone(), op.reference.clone()));
                }
                match outcome.status {
                    None => traffic.unresolved.push(op),
                    Some(_) if outcome.ok() => traffic.acked.push((op, outcome)),
                    Some(_) => traffic.refused.push((op, outcome)),
                }
                i += 1;
            }
            traffic
        }
    }))
    .await;
    let mut all = Traffic::default();
    for t in per_till {
        all.acked.extend(t.acked);
        all.unresolved.extend(t.unresolved);
        all.refused.extend(t.refused);
    }
    all
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Acknowledged operations missing from their card's transactions.
    pub lost: Vec<String>,
    /// Everything else that broke a promise: duplicates, a balance that is
    /// not its ledger, a replay answering otherwise, instances disagreeing.
    pub problems: Vec<String>,
}

/// An amount in hundredths.
fn cents(v: &Value) -> i64 {
    (v.as_f64()
        .unwrap_or_else(|| panic!("an amount expected: {v}"))
        * 100.0)
        .round() as i64
}

/// What the card holds, in hundredths: Active, Inactive and Frozen (not
/// Burnt; not Nearest expiring, which overlaps Active).
fn held(balance: &Value) -> i64 {
    balance["Bonuses"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter(|x| ["0", "1", "3"].contains(&x["StatusCode"].as_str().unwrap_or("")))
                .map(|x| cents(&x["Amount"]))
                .sum()
        })
        .unwrap_or(0)
}

/// Every transaction of the card (all pages), newest first.
async fn transactions(till: &Till, instance: usize, card: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/card/transactions/{card}?limit=500&cursor={c}"),
            None => format!("/api/card/transactions/{card}?limit=500"),
        };
        let page = till.get_ok(instance, POS, &path).await;
        items.extend(page["Items"].as_array().cloned().unwrap_or_default());
        match page["NextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// Reads every card back through both instances and checks: every
/// acknowledged operation is in its card's transactions exactly once (else
/// lost or doubled), an unresolved one at most once, nothing else is there;
/// the balance is the ledger's sum; both instances answer the same balance
/// and transactions; a replay of every acknowledged operation, on the
/// other instance, answers what the first answer said.
pub async fn verify(till: &Till, cards: &[String], traffic: &Traffic) -> Findings {
    let mut f = Findings::default();
    for (op, o) in &traffic.refused {
        f.problems.push(format!(
            "{} {} answered {:?} {}",
            op.path, op.reference, o.status, o.body
        ));
    }
    let mut expected: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    let mut maybe: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    for (op, _) in &traffic.acked {
        expected
            .entry(&op.card)
            .or_default()
            .insert((op.operation, &op.reference));
    }
    for op in &traffic.unresolved {
        maybe
            .entry(&op.card)
            .or_default()
            .insert((op.operation, &op.reference));
    }
    let seeds: Vec<String> = cards.iter().map(|c| format!("seed-{c}")).collect();
    for (card, seed) in cards.iter().zip(&seeds) {
        let txs = transactions(till, 0, card).await;
        if transactions(till, 1, card).await != txs {
            f.problems
                .push(format!("{card}: the instances list different transactions"));
        }
        let balance = till
            .get_ok(0, POS, &format!("/api/card/balance/by/{card}"))
            .await;
        let other = till
            .get_ok(1, POS, &format!("/api/card/balance/by/{card}"))
            .await;
        if balance["Bonuses"] != other["Bonuses"] {
            f.problems.push(format!(
                "{card}: the instances answer {balance} and {other}"
            ));
        }
        let sum: i64 = txs
            .iter()
            .map(|t| cents(&t["Credited"]) - cents(&t["Debited"]))
            .sum();
        if held(&balance) != sum {
            f.problems.push(format!(
                "{card}: holds {} but its ledger sums to {sum}",
                held(&balance)
            ));
        }
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        for t in &txs {
            let key = (
                t["Operation"].as_str().unwrap_or(""),
                t["Reference"].as_str().unwrap_or(""),
            );
            *seen.entry(key).or_default() += 1;
        }
        let want = expected.remove(card.as_str()).unwrap_or_default();
        let could = maybe.remove(card.as_str()).unwrap_or_default();
        for key in &want {
            match seen.get(key).copied().unwrap_or(0) {
                1 => {}
                0 => f.lost.push(format!("{card}: {} {}", key.0, key.1)),
                n => f
                    .problems
                    .push(format!("{card}: {} {} applied {n} times", key.0, key.1)),
            }
        }
        for (key, n) in &seen {
            let ours =
                want.contains(key) || could.contains(key) || *key == ("bonus", seed.as_str());
            if !ours {
                f.problems.push(format!(
                    "{card}: unexpected transaction {} {}",
                    key.0, key.1
                ));
            } else if *n > 1 && !want.contains(key) {
                f.problems
                    .push(format!("{card}: {} {} applied {n} times", key.0, key.1));
            }
        }
    }
    // Replays last: a lost operation replayed would be applied now, which
    // must not hide its loss above.
    for (op, o) in &traffic.acked {
        let replay = till.send(op, o.instance + 1).await;
        if !replay.ok() || replay.body != o.body {
            let lost = f.lost.iter().any(|l| l.ends_with(&op.reference));
            if !lost {
                f.problems.push(format!(
                    "a replay of {} {} answers {:?} {} after {}",
                    op.path, op.reference, replay.status, replay.body, o.body
                ));
            }
        }
    }
    f
}
