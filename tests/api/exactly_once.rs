//! Exactly once under concurrent retries (issue 12). A till that gets no
//! answer in time sends the same request again, possibly to the other server
//! instance behind the balancer, while the first is still running. Every
//! test here fires the same request (or two racing requests) at two
//! instances sharing one store at (nearly) the same instant, round after
//! round on fresh cards, and counts the rounds where money was applied twice
//! (or landed on the wrong card), read back through the balance, the card's
//! transactions and a later replay.
//!
//! The memory store lives inside one server and cannot be shared: these
//! tests are ignored there and run on the Redis backends
//! (`--include-ignored`, scripts/test.sh).
//!
//! What the two answers of a round may be (docs/api.md §7, §1.2, §11): the same
//! PurchaseId / RefundId / OperationId again "returns the first result and
//! changes nothing", so both answers of a duplicated request must be the
//! same 200 OK with identical bodies; a business error (4xx) for either is a
//! failure, since the request was accepted once. The only allowed non-answer
//! is a 503 (`Overloaded` with Retry-After, or `StoreUnavailable`): it is
//! no outcome, the till is told to retry, so the harness retries that side
//! as a till would and judges the answer it finally gets (likewise an HTTP
//! 408 of an overloaded machine). The retries are reported.
//!
//! Rounds run a few at a time ("lanes", each on its own cards). The
//! environment overrides every race's defaults: `LOYALTY_RACE_ROUNDS`,
//! `LOYALTY_RACE_LANES`, and `LOYALTY_RACE_EXAMPLES` (how many failing
//! rounds to print, 5).
//!
//! Before the fix of issue 12 (on one redis-server, a busy 2-core machine),
//! about 1 round in 7 of the refund and cancel races and 1 in 15 of the
//! replacement race went wrong, but only 1 duplicated confirm or manual
//! bonus in 1,000–4,000 (1 in ~300 on the cluster): their round counts are
//! what fits in ~30 s, and may miss on one redis-server (see there).

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use loyalty::config::Settings;
use serde_json::{json, Value};

use crate::helpers::*;

// --- the harness ------------------------------------------------------------

/// Rounds of a race: `LOYALTY_RACE_ROUNDS`, else `default`.
fn rounds(default: usize) -> usize {
    std::env::var("LOYALTY_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(default)
}

/// Two servers on one store, both with `change` applied to their settings.
async fn spawn_pair_with(change: impl Fn(&mut Settings) + Clone) -> Vec<TestApp> {
    require_shared_store();
    let prefix = unique_prefix();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let p = prefix.clone();
        let change = change.clone();
        apps.push(
            spawn_with(move |s| {
                use_backend(s, &p);
                change(s);
            })
            .await,
        );
    }
    apps
}

async fn spawn_pair() -> Vec<TestApp> {
    spawn_pair_with(|_| {}).await
}

/// A tiny xorshift64 PRNG: reproducible rounds without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Never zero (xorshift's fixed point); spread small seeds.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// How a round staggers its two requests: which one waits, and how long.
#[derive(Debug, Clone, Copy)]
struct Skew {
    first_waits: bool,
    micros: u64,
}

/// How a race draws its skews (percentages).
#[derive(Debug, Clone, Copy)]
struct SkewPlan {
    /// Rounds that start both requests at once.
    zero: u64,
    /// Of the others: rounds whose delay is drawn from 0–0.5 ms rather
    /// than from 0–3 ms.
    short: u64,
    /// Rounds where the first request is the one held back.
    first_waits: u64,
}

/// Duplicates of one request: the windows are a few store round trips
/// wide around "both at once", so most rounds start them together or
/// nearly, either side first.
const TWINS: SkewPlan = SkewPlan {
    zero: 40,
    short: 50,
    first_waits: 50,
};

impl Skew {
    /// A delay of 0–3 ms for one side, drawn by `plan`, to walk through
    /// interleavings.
    fn draw(rng: &mut XorShift, plan: SkewPlan) -> Skew {
        let micros = if rng.percent(plan.zero) {
            0
        } else if rng.percent(plan.short) {
            rng.below(501)
        } else {
            rng.below(3001)
        };
        Skew {
            first_waits: rng.percent(plan.first_waits),
            micros,
        }
    }
}

/// Waits `micros` without giving the thread to a timer of millisecond
/// grain: yields until the time has passed (the other side keeps running).
async fn pause(micros: u64) {
    if micros == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Runs `a` and `b` started in the same poll (so their requests leave
/// together), one of them held back by `skew`.
async fn at_once<A: Future, B: Future>(a: A, b: B, skew: Skew) -> (A::Output, B::Output) {
    let (wait_a, wait_b) = if skew.first_waits {
        (skew.micros, 0)
    } else {
        (0, skew.micros)
    };
    tokio::join!(
        async {
            pause(wait_a).await;
            a.await
        },
        async {
            pause(wait_b).await;
            b.await
        }
    )
}

/// Tills using one card at the same time in the confirm and manual-bonus
/// races, each sending its own request to both instances.
const TILLS_PER_CARD: usize = 8;

/// One POST of the API.
#[derive(Debug, Clone)]
struct Req {
    login: &'static str,
    path: &'static str,
    body: Value,
}

impl Req {
    fn confirm(number: &str, id: &str, amount: Value, pay: Value) -> Req {
        Req {
            login: POS,
            path: "/api/purchase/confirm",
            body: json!({"Number": number, "PurchaseId": id, "Amount": amount, "BonusToPay": pay}),
        }
    }

    fn cancel(id: &str) -> Req {
        Req {
            login: POS,
            path: "/api/purchase/cancel",
            body: json!({"PurchaseId": id}),
        }
    }

    fn refund(id: &str, refund_id: &str, amount: Value) -> Req {
        Req {
            login: POS,
            path: "/api/purchase/refund",
            body: json!({"PurchaseId": id, "RefundId": refund_id, "Amount": amount}),
        }
    }

    /// A manual accrual, Active from today.
    fn bonus(number: &str, op: &str, amount: Value, type_code: u8) -> Req {
        Req {
            login: MARKETER,
            path: "/api/card/bonus",
            body: json!({
                "Number": number, "OperationId": op, "Amount": amount,
                "TypeCode": type_code, "ActiveFrom": today(), "Comment": "race",
            }),
        }
    }

    fn bindto(number: &str, mobile: &str) -> Req {
        Req {
            login: POS,
            path: "/api/card/bindto",
            body: json!({"Number": number, "MobileNumber": mobile}),
        }
    }
}

/// How many answers without an outcome in a row a till retries.
const TILL_RETRIES: u32 = 200;

/// Sends `req` as a till does: an answer that is no outcome is sent again,
/// after a short pause (not the Retry-After second: these tests only judge
/// the final answer, never timing). No outcome: a 503 (retry later), or a
/// 408 from the HTTP layer, which gave up reading the request on a
/// machine too busy to deliver it in time (it never reached the engine).
/// Returns the final answer and how many answers were retried.
async fn send_as_till(app: &TestApp, req: &Req) -> (Resp, u32) {
    let mut retried = 0;
    loop {
        let r = app.post(req.login, req.path, req.body.clone()).await;
        if matches!(r.status, 503 | 408) && retried < TILL_RETRIES {
            retried += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        return (r, retried);
    }
}

/// The same request to both instances at once (a till retrying on the
/// other instance). Round `round` picks which instance goes first in the
/// join, so both orders are tried.
async fn twins(apps: &[TestApp], round: usize, req: &Req, skew: Skew) -> (Resp, Resp, u32) {
    let a = &apps[round % apps.len()];
    let b = &apps[(round + 1) % apps.len()];
    let ((ra, na), (rb, nb)) = at_once(send_as_till(a, req), send_as_till(b, req), skew).await;
    (ra, rb, na + nb)
}

/// Both answers 200 OK with the same body? Else a description.
fn same_ok(a: &Resp, b: &Resp) -> Result<(), String> {
    if (a.status, a.key()) != (200, "OK") || (b.status, b.key()) != (200, "OK") || a.body != b.body
    {
        return Err(format!(
            "answers differ or fail: {} {} / {} {}",
            a.status, a.body, b.status, b.body
        ));
    }
    Ok(())
}

/// What a race counted.
struct Tally {
    name: &'static str,
    rounds: usize,
    /// Rounds where money was applied twice (or on the wrong card).
    doubles: usize,
    /// Rounds where the two answers were not the same OK.
    bad_answers: usize,
    retried: u32,
    examples: Vec<String>,
    started: Instant,
}

impl Tally {
    fn new(name: &'static str, rounds: usize) -> Tally {
        Tally {
            name,
            rounds,
            doubles: 0,
            bad_answers: 0,
            retried: 0,
            examples: Vec::new(),
            started: Instant::now(),
        }
    }

    fn example(&mut self, round: usize, skew: Skew, what: String) {
        let keep = std::env::var("LOYALTY_RACE_EXAMPLES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(5);
        if self.examples.len() < keep {
            self.examples
                .push(format!("round {round} ({skew:?}): {what}"));
        }
    }

    /// Records the round's answer check and its state check.
    fn round(&mut self, round: usize, skew: Skew, outcome: Outcome) {
        self.retried += outcome.retried;
        if let Err(e) = outcome.answers {
            self.bad_answers += 1;
            self.example(round, skew, e);
        }
        if let Err(e) = outcome.state {
            self.doubles += 1;
            self.example(round, skew, e);
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "{}: {} {what} in {} rounds ({} rounds with answers not the same OK, {} no-outcome answers retried, {:.1} s, backend {})",
            self.name,
            self.doubles,
            self.rounds,
            self.bad_answers,
            self.retried,
            self.started.elapsed().as_secs_f64(),
            backend_name(),
        );
        for e in &self.examples {
            eprintln!("  {e}");
        }
        assert_eq!(
            (self.doubles, self.bad_answers),
            (0, 0),
            "{}: {what} / bad answers; first: {:#?}",
            self.name,
            self.examples
        );
    }
}

/// What one round of a race found.
struct Outcome {
    /// The answers were what the contract allows (else why not).
    answers: Result<(), String>,
    /// The card(s) read back show the operation applied exactly once, on
    /// the right card (else what was found).
    state: Result<(), String>,
    retried: u32,
}

/// Rounds run at the same time (each on its own fresh cards):
/// `LOYALTY_RACE_LANES`, else the race's `default`. Besides saving time,
/// the other rounds' traffic on the same store connections shakes up the
/// timing of each race.
fn lanes(default: usize) -> usize {
    std::env::var("LOYALTY_RACE_LANES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(default)
}

/// Runs `rounds(default_rounds)` rounds of `one_round`,
/// `lanes(default_lanes)` at a time, each with its own skew drawn by `plan`
/// from `seed`; reports and asserts that no round found a double
/// application (`what`) or a wrong answer.
async fn race<F, Fut>(
    name: &'static str,
    default_rounds: usize,
    default_lanes: usize,
    seed: u64,
    plan: SkewPlan,
    what: &str,
    one_round: F,
) where
    F: Fn(usize, Skew) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let n = rounds(default_rounds);
    let lanes = lanes(default_lanes);
    let mut tally = Tally::new(name, n);
    let mut rng = XorShift::new(seed);
    let mut first = 0;
    while first < n {
        let batch: Vec<(usize, Skew)> = (first..(first + lanes).min(n))
            .map(|round| (round, Skew::draw(&mut rng, plan)))
            .collect();
        let outcomes = join_all(batch.iter().map(|&(round, skew)| one_round(round, skew))).await;
        for ((round, skew), outcome) in batch.into_iter().zip(outcomes) {
            tally.round(round, skew, outcome);
        }
        first += lanes;
    }
    tally.finish(what);
}

fn backend_name() -> String {
    std::env::var("LOYALTY_TEST_BACKEND").unwrap_or_else(|_| "memory".into())
}

// --- reading the card back ----------------------------------------------------

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// An amount of the answers in hundredths.
fn cents(v: &Value) -> i64 {
    let f = v
        .as_f64()
        .unwrap_or_else(|| panic!("an amount expected: {v}"));
    (f * 100.0).round() as i64
}

/// The balance answer's body (asserted OK).
async fn balance(app: &TestApp, number: &str) -> Value {
    let r = app.balance(number).await;
    r.ok();
    r.body
}

/// The amount of one bonus status over both bonus types, in hundredths.
fn status_total(balance: &Value, status: &str) -> i64 {
    balance["Bonuses"]
        .as_array()
        .expect("Bonuses")
        .iter()
        .filter(|b| b["StatusCode"] == status)
        .map(|b| cents(&b["Amount"]))
        .sum()
}

/// (Active, Inactive) in hundredths, over both bonus types.
fn active_inactive(balance: &Value) -> (i64, i64) {
    (status_total(balance, "0"), status_total(balance, "1"))
}

/// What the card holds: the sum over its Bonuses buckets that count money
/// the card holds now (Active, Inactive, Frozen; not Burnt, and not Nearest
/// expiring, which overlaps Active), in hundredths.
fn held(balance: &Value) -> i64 {
    ["0", "1", "3"]
        .iter()
        .map(|s| status_total(balance, s))
        .sum()
}

/// Every transaction of the card (all pages), newest first.
async fn transactions(app: &TestApp, number: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/card/transactions/{number}?limit=500&cursor={c}"),
            None => format!("/api/card/transactions/{number}?limit=500"),
        };
        let page = app.get(POS, &path).await;
        page.ok();
        items.extend(
            page.body["Items"]
                .as_array()
                .expect("Items")
                .iter()
                .cloned(),
        );
        match page.body["NextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// How many transactions are `operation` with `reference`.
fn entries(txs: &[Value], operation: &str, reference: &str) -> usize {
    txs.iter()
        .filter(|t| t["Operation"] == operation && t["Reference"] == reference)
        .count()
}

/// Σ Credited − Σ Debited over the transactions, in hundredths.
fn ledger_sum(txs: &[Value]) -> i64 {
    txs.iter()
        .map(|t| cents(&t["Credited"]) - cents(&t["Debited"]))
        .sum()
}

fn check(cond: bool, what: impl FnOnce() -> String, problems: &mut Vec<String>) {
    if !cond {
        problems.push(what());
    }
}

fn verdict(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// --- race 1: the same refund on both instances ------------------------------------

/// The same refund (PurchaseId + RefundId + Amount) at both instances.
///
/// A purchase of 300 paying 60 with bonuses (accrual 5% of 240 = 12) on a
/// card holding 100; the refund of 100 (a third) gives back 20 written-off
/// bonuses and takes back 4 of the accrual. "Double" means any of: a later
/// replay answering `RefundedTotal` ≠ 100 (or another body than an OK
/// answer of the race); more than one `refund` transaction with that
/// RefundId; the card's (Active, Inactive) ≠ (100 − 60 + 20, 12 − 4) =
/// (60, 8).
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn the_same_refund_at_both_instances_applies_once() {
    let apps = spawn_pair().await;
    let apps = &apps;
    race(
        "refund race",
        200,
        8,
        0x1111,
        TWINS,
        "double applications",
        |round, skew| async move {
            let number = apps[0].card_with_bonuses(100).await;
            let pid = format!("rf-{}", unique_code());
            apps[0]
                .confirm(&number, &pid, json!(300), json!(60))
                .await
                .ok();
            let rid = format!("r-{}", unique_code());
            let req = Req::refund(&pid, &rid, json!(100));
            let (a, b, retried) = twins(apps, round, &req, skew).await;

            let mut problems = Vec::new();
            let replay = send_as_till(&apps[0], &req).await.0;
            check(
                replay.status == 200
                    && (
                        cents(&replay.body["RefundedTotal"]),
                        cents(&replay.body["BonusReturned"]),
                        cents(&replay.body["AccrualReversed"]),
                    ) == (10_000, 2_000, 400),
                || format!("a replay answers {}", replay.body),
                &mut problems,
            );
            replays_match(&[&a, &b], &replay, &mut problems);
            let txs = transactions(&apps[0], &number).await;
            let count = entries(&txs, "refund", &rid);
            check(
                count == 1,
                || format!("{count} refund transactions"),
                &mut problems,
            );
            let bal = active_inactive(&balance(&apps[0], &number).await);
            check(
                bal == (6_000, 800),
                || format!("(Active, Inactive) = {bal:?}, expected (6000, 800)"),
                &mut problems,
            );
            Outcome {
                answers: same_ok(&a, &b),
                state: verdict(problems),
                retried,
            }
        },
    )
    .await;
}

/// Every OK answer of the race must be what a later replay answers (the
/// stored outcome): a second run must neither answer its own result nor
/// overwrite the first one's.
fn replays_match(answers: &[&Resp], replay: &Resp, problems: &mut Vec<String>) {
    for r in answers {
        if r.key() == "OK" {
            check(
                r.body == replay.body,
                || format!("a replay answers {} after {}", replay.body, r.body),
                problems,
            );
        }
    }
}

// --- race 2: the same cancel on both instances ------------------------------------

/// The same cancel at both instances.
///
/// A purchase of 200 paying 40 (accrual 8) on a card holding 100; its
/// cancel gives back 40 and takes back 8, leaving (Active, Inactive) =
/// (100, 0). "Double" means any of: more than one `cancel` transaction for
/// the purchase; a later replay answering other than `AccrualReversed` 8 /
/// `BonusReturned` 40, or another body than an OK answer of the race (the
/// stored outcome overwritten by a second run); the card's balance ≠
/// (100, 0).
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn the_same_cancel_at_both_instances_applies_once() {
    let apps = spawn_pair().await;
    let apps = &apps;
    race(
        "cancel race",
        200,
        8,
        0x2222,
        TWINS,
        "double applications",
        |round, skew| async move {
            let number = apps[0].card_with_bonuses(100).await;
            let pid = format!("cn-{}", unique_code());
            apps[0]
                .confirm(&number, &pid, json!(200), json!(40))
                .await
                .ok();
            let req = Req::cancel(&pid);
            let (a, b, retried) = twins(apps, round, &req, skew).await;

            let mut problems = Vec::new();
            let replay = send_as_till(&apps[0], &req).await.0;
            check(
                replay.status == 200
                    && (
                        cents(&replay.body["AccrualReversed"]),
                        cents(&replay.body["BonusReturned"]),
                    ) == (800, 4_000),
                || format!("a replay answers {}", replay.body),
                &mut problems,
            );
            replays_match(&[&a, &b], &replay, &mut problems);
            let txs = transactions(&apps[0], &number).await;
            let count = entries(&txs, "cancel", &pid);
            check(
                count == 1,
                || format!("{count} cancel transactions"),
                &mut problems,
            );
            let bal = active_inactive(&balance(&apps[0], &number).await);
            check(
                bal == (10_000, 0),
                || format!("(Active, Inactive) = {bal:?}, expected (10000, 0)"),
                &mut problems,
            );
            Outcome {
                answers: same_ok(&a, &b),
                state: verdict(problems),
                retried,
            }
        },
    )
    .await;
}

// --- race 3: a cancel racing the replacement of its card ---------------------------

/// A cancel of a purchase on card X racing the `bindto` of X's replacement
/// Y (X already blocked with reason 4), each to another instance.
///
/// X holds 100 (manual), then purchase P1 of 200 paying 40 (accrual 8) and
/// P2 of 100 paying 10 (accrual 4.5), all before the block; P1 is
/// cancelled. Whatever the order, the cancel must reverse P1 exactly once,
/// on the ledger that holds the bonuses: after both (and a cancel replay)
///   - Y holds everything: Active 100 − 40 − 10 + 40 = 90 (P2's write-off
///     stays spent, P1's comes back), Inactive 4.5 (P2's accrual; P1's 8
///     taken back): total 100 − 10 + 4.5 = 94.5, and Y's transactions sum
///     (Credited − Debited) to what it holds;
///   - X shows no bonuses and `ReplacedBy` Y, and X's ledger is empty: the
///     sum of X's transactions is 0 — nothing stranded on the old card,
///     where the balance answer would hide it;
///   - exactly one `cancel` transaction for P1 over X and Y, and the cancel
///     replay answers like the cancel (AccrualReversed 8, BonusReturned 40).
///
/// Both requests must answer OK: they are different requests, each valid
/// whatever the order.
///
/// The window (the cancel reads X before the bind marks it replaced and
/// moves its lots, then reads it again after) is about one store round
/// trip wide and lies a few round trips into the bind: the cancel is held
/// back in most rounds, few rounds run at a time (more lanes blur the
/// timing), and 200 rounds rather than 60, as about 1 round in 15 hits it.
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_cancel_racing_the_replacement_lands_on_the_card_that_holds_the_bonuses() {
    let apps = spawn_pair().await;
    let apps = &apps;
    race(
        "replacement race",
        200,
        4,
        0x3333,
        // The bind does a few store round trips before it moves X's lots;
        // a cancel that starts first is mostly done by then: hold the
        // cancel (the first request) back in most rounds, by up to 3 ms.
        SkewPlan {
            zero: 10,
            short: 0,
            first_waits: 80,
        },
        "misplaced or double reversals",
        |round, skew| async move {
            let app = &apps[0];
            let (x, contact) = app.card_in(State::Active).await;
            let contact = contact.unwrap();
            app.accrue(&x, &unique_code(), json!(100), json!({}))
                .await
                .ok();
            let p1 = format!("x1-{}", unique_code());
            let p2 = format!("x2-{}", unique_code());
            app.confirm(&x, &p1, json!(200), json!(40)).await.ok();
            app.confirm(&x, &p2, json!(100), json!(10)).await.ok();
            app.block(CC_OPERATOR, &x, "4").await.ok();
            let y = app.new_card().await;
            app.issue(POS, &y).await.ok();

            let cancel = Req::cancel(&p1);
            let bind = Req::bindto(&y, &contact.mobile);
            let on_cancel = &apps[round % apps.len()];
            let on_bind = &apps[(round + 1) % apps.len()];
            let ((c, nc), (bnd, nb)) = at_once(
                send_as_till(on_cancel, &cancel),
                send_as_till(on_bind, &bind),
                skew,
            )
            .await;
            let answers =
                if (c.status, c.key()) == (200, "OK") && (bnd.status, bnd.key()) == (200, "OK") {
                    Ok(())
                } else {
                    Err(format!(
                        "cancel {} {} / bindto {} {}",
                        c.status, c.body, bnd.status, bnd.body
                    ))
                };

            let mut problems = Vec::new();
            let replay = send_as_till(on_bind, &cancel).await.0;
            check(
                replay.status == 200
                    && (
                        cents(&replay.body["AccrualReversed"]),
                        cents(&replay.body["BonusReturned"]),
                    ) == (800, 4_000),
                || format!("the cancel replay answers {}", replay.body),
                &mut problems,
            );
            replays_match(&[&c], &replay, &mut problems);
            let by = balance(app, &y).await;
            let bal = active_inactive(&by);
            check(
                bal == (9_000, 450) && held(&by) == 9_450,
                || format!("Y (Active, Inactive) = {bal:?}, expected (9000, 450)"),
                &mut problems,
            );
            let bx = balance(app, &x).await;
            check(
                bx["Bonuses"] == json!([]) && bx["ReplacedBy"] == json!(y),
                || format!("X answers {bx}"),
                &mut problems,
            );
            let tx = transactions(app, &x).await;
            let ty = transactions(app, &y).await;
            let stranded = ledger_sum(&tx);
            check(
                stranded == 0,
                || format!("{stranded} hundredths stranded on X"),
                &mut problems,
            );
            check(
                ledger_sum(&ty) == held(&by),
                || {
                    format!(
                        "Y's transactions sum to {}, it holds {}",
                        ledger_sum(&ty),
                        held(&by)
                    )
                },
                &mut problems,
            );
            let cancels = entries(&tx, "cancel", &p1) + entries(&ty, "cancel", &p1);
            check(
                cancels == 1,
                || format!("{cancels} cancel transactions over X and Y"),
                &mut problems,
            );
            Outcome {
                answers,
                state: verdict(problems),
                retried: nc + nb,
            }
        },
    )
    .await;
}

// --- race 4: the same confirm, the same manual bonus -------------------------------

/// The same confirm (same PurchaseId and body) at both instances.
///
/// Each round, `TILLS_PER_CARD` tills buy on one card holding 1000 at the
/// same time, each sending its purchase (200 paying 40, accrual 8, its own
/// PurchaseId) to both instances at once. "Double" means any of: more than
/// one `purchase` transaction with a PurchaseId; the card's (Active,
/// Inactive) ≠ (1000 − 8 × 40, 8 × 8) = (680, 64); a later replay
/// answering another body than an OK answer of the race. (A double answers
/// the same body twice: only the read-back finds it.)
///
/// Confirm reads the card and its stored outcome "together", on two pooled
/// store connections: a second run applies again only when the store
/// serves its outcome read before the first run's write and its card read
/// after it. That takes traffic on the connections (16 rounds at a time,
/// 8 tills per card, whose commits also make the runs read again) and many
/// tries: before the fix about 1 duplicated confirm in 1,000–4,000 applied
/// twice on one redis-server (0–3 per run of 500 rounds), 1 in ~300 on the
/// cluster.
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn the_same_confirm_at_both_instances_applies_once() {
    let apps = spawn_pair().await;
    let apps = &apps;
    race(
        "confirm race",
        500,
        16,
        0x4444,
        TWINS,
        "double applications",
        |round, skew| async move {
            let number = apps[0].card_with_bonuses(1000).await;
            let reqs: Vec<Req> = (0..TILLS_PER_CARD)
                .map(|_| {
                    let pid = format!("cf-{}", unique_code());
                    Req::confirm(&number, &pid, json!(200), json!(40))
                })
                .collect();
            let pairs = join_all(
                reqs.iter()
                    .enumerate()
                    .map(|(k, req)| twins(apps, round + k, req, skew)),
            )
            .await;

            let mut problems = Vec::new();
            let mut answers = Ok(());
            let mut retried = 0;
            let txs = transactions(&apps[0], &number).await;
            for (req, (a, b, n)) in reqs.iter().zip(&pairs) {
                retried += n;
                if let Err(e) = same_ok(a, b) {
                    answers = Err(e);
                }
                let replay = send_as_till(&apps[round % apps.len()], req).await.0;
                check(
                    replay.status == 200 && cents(&replay.body["Accrual"]) == 800,
                    || format!("a replay answers {}", replay.body),
                    &mut problems,
                );
                replays_match(&[a, b], &replay, &mut problems);
                let pid = req.body["PurchaseId"].as_str().unwrap();
                let count = entries(&txs, "purchase", pid);
                check(
                    count == 1,
                    || format!("{count} purchase transactions for {pid}"),
                    &mut problems,
                );
            }
            let tills = TILLS_PER_CARD as i64;
            let want = (100_000 - tills * 4_000, tills * 800);
            let bal = active_inactive(&balance(&apps[0], &number).await);
            check(
                bal == want,
                || format!("(Active, Inactive) = {bal:?}, expected {want:?}"),
                &mut problems,
            );
            Outcome {
                answers,
                state: verdict(problems),
                retried,
            }
        },
    )
    .await;
}

/// The same manual bonus (`POST /api/card/bonus`, marketer, same
/// OperationId and body) at both instances.
///
/// Each round, `TILLS_PER_CARD` accruals of 25.50 (own OperationIds, Active
/// from today) on one Issued card holding nothing, each sent to both
/// instances at once. "Double" means any of: more than one `bonus`
/// transaction with an OperationId; the card's (Active, Inactive) ≠
/// (8 × 25.50, 0); a later replay answering another body than an OK answer
/// of the race. Rounds, lanes and tills as for the confirm race, for the
/// same narrow window.
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn the_same_manual_bonus_at_both_instances_applies_once() {
    let apps = spawn_pair().await;
    let apps = &apps;
    race(
        "manual bonus race",
        500,
        16,
        0x5555,
        TWINS,
        "double applications",
        |round, skew| async move {
            let (number, _) = apps[0].card_in(State::IssuedUnbound).await;
            let reqs: Vec<Req> = (0..TILLS_PER_CARD)
                .map(|_| {
                    let op = format!("mb-{}", unique_code());
                    Req::bonus(&number, &op, json!(25.5), 0)
                })
                .collect();
            let pairs = join_all(
                reqs.iter()
                    .enumerate()
                    .map(|(k, req)| twins(apps, round + k, req, skew)),
            )
            .await;

            let mut problems = Vec::new();
            let mut answers = Ok(());
            let mut retried = 0;
            let txs = transactions(&apps[0], &number).await;
            for (req, (a, b, n)) in reqs.iter().zip(&pairs) {
                retried += n;
                if let Err(e) = same_ok(a, b) {
                    answers = Err(e);
                }
                let replay = send_as_till(&apps[round % apps.len()], req).await.0;
                check(
                    replay.status == 200 && cents(&replay.body["Amount"]) == 2_550,
                    || format!("a replay answers {}", replay.body),
                    &mut problems,
                );
                replays_match(&[a, b], &replay, &mut problems);
                let op = req.body["OperationId"].as_str().unwrap();
                let count = entries(&txs, "bonus", op);
                check(
                    count == 1,
                    || format!("{count} bonus transactions for {op}"),
                    &mut problems,
                );
            }
            let want = (TILLS_PER_CARD as i64 * 2_550, 0);
            let bal = active_inactive(&balance(&apps[0], &number).await);
            check(
                bal == want,
                || format!("(Active, Inactive) = {bal:?}, expected {want:?}"),
                &mut problems,
            );
            Outcome {
                answers,
                state: verdict(problems),
                retried,
            }
        },
    )
    .await;
}

// --- property: random operations, every request sent twice ----------------------

/// One idempotency key the property test used, and what became of it.
struct Key {
    /// The transaction `Operation` it writes when applied.
    operation: &'static str,
    /// The transaction `Reference` (PurchaseId, RefundId or OperationId).
    reference: String,
    req: Req,
    /// The answer when it was applied (OK); `None`: refused.
    applied: Option<Value>,
}

/// A confirmed purchase of the property test.
struct Purchase {
    id: String,
    amount: i64,
    refunded: i64,
    cancelled: bool,
}

/// The change of the card's holding an OK answer reports, in hundredths.
fn delta(operation: &str, answer: &Value) -> i64 {
    match operation {
        "purchase" => cents(&answer["Accrual"]) - cents(&answer["BonusToPay"]),
        "bonus" => cents(&answer["Amount"]),
        "cancel" | "refund" => {
            cents(&answer["BonusReturned"]) - cents(&answer["AccrualReversed"])
                + cents(&answer["Uncovered"])
        }
        other => unreachable!("{other}"),
    }
}

fn money(hundredths: i64) -> Value {
    json!(hundredths as f64 / 100.0)
}

/// A random sequence of confirms (new PurchaseIds), refunds (new RefundIds,
/// parts of earlier purchases, sometimes more than is left), cancels and
/// manual bonuses on one card, where EVERY request is sent twice at once,
/// once to each instance (a retrying till), and earlier requests are now
/// and then sent again. Purchase accruals are Active at once
/// (`bonus.activation_delay_days = 0`), manual bonuses Active from today.
///
/// Asserted: the two answers of each request are the same (an OK twice
/// with one body, or the same refusal); every key applied (answered OK) has
/// exactly one transaction with its operation and reference, every refused
/// one none, and there are no other transactions; a replay of every applied
/// request answers its first answer; the card's holding (Active + Inactive
/// over both bonus types) == Σ Credited − Σ Debited over its transactions
/// == the sum of what the OK answers reported.
#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn random_operations_each_sent_twice_apply_each_key_once() {
    let apps = spawn_pair_with(|s| s.bonus.activation_delay_days = 0).await;
    let seeds: [u64; 8] = [1, 2, 3, 5, 8, 42, 1234, 0xDEAD_BEEF];
    let ops_per_seed = 50;
    let started = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    let mut retried_total = 0;
    let mut pairs = 0;
    for seed in seeds {
        let mut rng = XorShift::new(seed);
        let (number, _) = apps[0].card_in(State::Active).await;
        let mut keys: Vec<Key> = Vec::new();
        let mut purchases: Vec<Purchase> = Vec::new();
        // Something to pay with from the start.
        let first = Req::bonus(&number, &format!("seed-{}", unique_code()), json!(200), 0);
        let r = apps[0]
            .post(first.login, first.path, first.body.clone())
            .await;
        r.ok();
        keys.push(Key {
            operation: "bonus",
            reference: first.body["OperationId"].as_str().unwrap().to_owned(),
            req: first,
            applied: Some(r.body),
        });
        for step in 0..ops_per_seed {
            let roll = rng.below(100);
            // Purchases with something left to refund.
            let open: Vec<usize> = (0..purchases.len())
                .filter(|&i| !purchases[i].cancelled && purchases[i].amount > purchases[i].refunded)
                .collect();
            // (request, operation, reference, purchase it changes, earlier
            // key it retries)
            let (req, operation, reference, purchase, replay_of) =
                if roll < 35 || purchases.is_empty() {
                    let id = format!("pp-{}", unique_code());
                    let amount = rng.between(100, 40_000);
                    let pay = if rng.percent(30) {
                        0
                    } else {
                        rng.between(0, amount / 2)
                    };
                    let req = Req::confirm(&number, &id, money(amount), money(pay));
                    (req, "purchase", id, None, None)
                } else if roll < 60 && !open.is_empty() {
                    let i = open[rng.below(open.len() as u64) as usize];
                    let left = purchases[i].amount - purchases[i].refunded;
                    let amount = match rng.below(10) {
                        0 => left + 1, // more than is left: refused
                        1 => left,
                        _ => rng.between(1, left),
                    };
                    let rid = format!("rr-{}", unique_code());
                    let req = Req::refund(&purchases[i].id, &rid, money(amount));
                    (req, "refund", rid, Some(i), None)
                } else if roll < 72 {
                    let i = rng.below(purchases.len() as u64) as usize;
                    let id = purchases[i].id.clone();
                    (Req::cancel(&id), "cancel", id, Some(i), None)
                } else if roll < 90 {
                    let op = format!("pb-{}", unique_code());
                    let amount = rng.between(1, 5_000);
                    let type_code = u8::from(rng.percent(30));
                    let req = Req::bonus(&number, &op, money(amount), type_code);
                    (req, "bonus", op, None, None)
                } else {
                    // A late retry of an earlier applied request.
                    let applied: Vec<usize> = (0..keys.len())
                        .filter(|&k| keys[k].applied.is_some())
                        .collect();
                    let k = applied[rng.below(applied.len() as u64) as usize];
                    let key = &keys[k];
                    (
                        key.req.clone(),
                        key.operation,
                        key.reference.clone(),
                        None,
                        Some(k),
                    )
                };
            // A cancel of a purchase already cancelled is a retry of that
            // cancel's key, not a new one.
            let replay_of = replay_of.or_else(|| {
                (operation == "cancel")
                    .then(|| {
                        keys.iter()
                            .position(|k| k.operation == "cancel" && k.reference == reference)
                    })
                    .flatten()
            });
            let skew = Skew::draw(&mut rng, TWINS);
            let (a, b, retried) = twins(&apps, step, &req, skew).await;
            retried_total += retried;
            pairs += 1;
            let at = format!("seed {seed} step {step} {} {}", req.path, req.body);
            if a.status != b.status || a.body != b.body || a.status >= 500 {
                problems.push(format!(
                    "{at}: twins answered {} {} / {} {}",
                    a.status, a.body, b.status, b.body
                ));
            }
            if let Some(k) = replay_of {
                let first = keys[k].applied.clone();
                for r in [&a, &b] {
                    if Some(&r.body) != first.as_ref() {
                        problems.push(format!(
                            "{at}: a retry answered {} {}, first {:?}",
                            r.status, r.body, first
                        ));
                    }
                }
                continue;
            }
            // A new key: applied if either twin says so (when they
            // disagree, that was noted above).
            let answer = if b.key() == "OK" { &b } else { &a };
            let applied = (answer.status, answer.key()) == (200, "OK");
            if applied {
                if let Some(i) = purchase {
                    match operation {
                        "refund" => {
                            purchases[i].refunded = cents(&answer.body["RefundedTotal"]);
                        }
                        "cancel" => purchases[i].cancelled = true,
                        _ => {}
                    }
                }
                if operation == "purchase" {
                    purchases.push(Purchase {
                        id: reference.clone(),
                        amount: cents(&answer.body["Amount"]),
                        refunded: 0,
                        cancelled: false,
                    });
                }
            } else if answer.status >= 500 {
                problems.push(format!("{at}: answered {} {}", answer.status, answer.body));
            }
            keys.push(Key {
                operation,
                reference,
                req,
                applied: applied.then(|| answer.body.clone()),
            });
        }

        // Replays of every applied request answer the first answer.
        for (k, key) in keys.iter().enumerate() {
            let Some(first) = &key.applied else { continue };
            let r = send_as_till(&apps[k % apps.len()], &key.req).await.0;
            if &r.body != first {
                problems.push(format!(
                    "seed {seed}: replay of {} {} answered {}, first {first}",
                    key.req.path, key.req.body, r.body
                ));
            }
        }
        let txs = transactions(&apps[0], &number).await;
        let mut expected_entries = 0;
        let mut model = 0;
        for key in &keys {
            let count = entries(&txs, key.operation, &key.reference);
            let want = usize::from(key.applied.is_some());
            expected_entries += want;
            if count != want {
                problems.push(format!(
                    "seed {seed}: {} {} has {count} transactions, expected {want}",
                    key.operation, key.reference
                ));
            }
            if let Some(answer) = &key.applied {
                model += delta(key.operation, answer);
            }
        }
        if txs.len() != expected_entries {
            problems.push(format!(
                "seed {seed}: {} transactions, {expected_entries} keys applied",
                txs.len()
            ));
        }
        let bal = balance(&apps[0], &number).await;
        let holding = held(&bal);
        let ledger = ledger_sum(&txs);
        if status_total(&bal, "2") != 0 {
            problems.push(format!("seed {seed}: Burnt bonuses {bal}"));
        }
        if holding != ledger || holding != model {
            problems.push(format!(
                "seed {seed}: the card holds {holding}, its transactions sum to {ledger}, the answers to {model}"
            ));
        }
    }
    eprintln!(
        "property: {} violations over {} seeds × {ops_per_seed} operations ({pairs} request pairs, {retried_total} no-outcome answers retried, {:.1} s, backend {})",
        problems.len(),
        seeds.len(),
        started.elapsed().as_secs_f64(),
        backend_name(),
    );
    for p in problems.iter().take(10) {
        eprintln!("  {p}");
    }
    assert!(
        problems.is_empty(),
        "{} violations: {problems:#?}",
        problems.len()
    );
}
