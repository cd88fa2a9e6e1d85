//! The scenarios, as tills and the contact centre would produce them. Every
//! request is valid against a correct server (see `dataset` for who may
//! touch which card), so any error answer is a finding.
//!
//! A scenario is a weighted mix of transactions ([`mix`]). The open model
//! (`open.rs`) picks one per arrival by weight; goose's closed model runs
//! each transaction `weight` times per pass of a user, interleaved: the
//! same proportions either way (pos-mix: per 200 transactions).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goose::prelude::*;
use serde_json::{json, Value};

use crate::calls::{send, Call, Stop, Timeline, Via};
use crate::client::card_state;
use crate::dataset::Dataset;
use crate::record::Recorder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// A fleet's day: balances, calculate, confirm with write-offs, refunds
    /// and cancels, block/unblock by the contact centre, a trickle of new cards.
    PosMix,
    /// Balances by number, phone and contact code, and calculate.
    ReadOnly,
    /// confirm/refund/cancel on a small hot set of cards: contention.
    WriteHeavy,
    /// New cards through issue → contact → bind → activate → block → unblock.
    Lifecycle,
    /// N distinct till logins connect at once (cold credential cache): time
    /// until p99 is back under the SLO.
    RestartStorm,
    /// One call each (issue 7's table): balance by number only.
    BalanceNumber,
    /// Balance by phone only.
    BalancePhone,
    /// Balance by contact code only.
    BalanceCode,
    /// purchase/confirm only (with write-offs, as in pos-mix).
    Confirm,
    /// A till's purchase with a hold (issue 24): hold the write-off, then
    /// confirm it (9 in 10) or release it (1 in 10, the payment failed).
    /// One arrival, one purchase: compare its arrivals/s with `confirm`'s.
    HoldConfirm,
    /// GET /health only: the yardstick.
    Health,
}

impl ScenarioName {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::PosMix => "pos-mix",
            ScenarioName::ReadOnly => "read-only",
            ScenarioName::WriteHeavy => "write-heavy",
            ScenarioName::Lifecycle => "lifecycle",
            ScenarioName::RestartStorm => "restart-storm",
            ScenarioName::BalanceNumber => "balance-number",
            ScenarioName::BalancePhone => "balance-phone",
            ScenarioName::BalanceCode => "balance-code",
            ScenarioName::Confirm => "confirm",
            ScenarioName::HoldConfirm => "hold-confirm",
            ScenarioName::Health => "health",
        }
    }
}

/// Everything the users share.
pub struct Ctx {
    pub ds: Dataset,
    pub pos: String,
    pub cc: String,
    /// Makes PurchaseIds and RefundIds unique to this run.
    pub run_id: String,
    pub rec: Recorder,
    /// Set when the run cannot go on (the New pool is used up in
    /// lifecycle): the open model stops sending.
    pub stop: AtomicBool,
    pub next_new: AtomicUsize,
    pub new_exhausted: AtomicBool,
    /// Call-centre cards not held by any user.
    pub cc_pool: Mutex<VecDeque<usize>>,
    pub timeline: Option<Timeline>,
    /// restart-storm: one Authorization header per till.
    pub tills: Vec<String>,
    /// restart-storm: tills that had a success, and when the last did (ms
    /// after the timeline's start).
    pub tills_in: AtomicUsize,
    pub all_tills_in_ms: AtomicU64,
}

impl Ctx {
    pub fn new(ds: Dataset, pos: String, cc: String, first_new: usize) -> Ctx {
        let pool = ds.cc_cards().collect();
        Ctx {
            run_id: format!("{:08x}", rand::random::<u32>()),
            next_new: AtomicUsize::new(first_new),
            new_exhausted: AtomicBool::new(false),
            cc_pool: Mutex::new(pool),
            timeline: None,
            tills: Vec::new(),
            tills_in: AtomicUsize::new(0),
            all_tills_in_ms: AtomicU64::new(0),
            rec: Recorder::new(std::time::Instant::now()),
            stop: AtomicBool::new(false),
            ds,
            pos,
            cc,
        }
    }

    async fn send(&self, via: &mut Via<'_>, call: Call<'_>) -> Result<Value, Stop> {
        send(via, &self.rec, self.timeline.as_ref(), call).await
    }
}

#[derive(Debug, Clone)]
struct Purchase {
    id: String,
    /// Hundredths not yet refunded.
    left: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Scan,
    Issue,
    Contact,
    Bind,
    Activate,
}

/// A user's own state between transactions (the open model keeps a pool
/// of them: each arrival borrows one, as a till serves one customer).
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// Makes this user's PurchaseIds unique within the run.
    id: usize,
    seq: u64,
    purchases: VecDeque<Purchase>,
    /// The call-centre card this user blocked, and the block reason.
    cc_card: Option<(usize, &'static str)>,
    life: Option<(usize, Stage)>,
    /// restart-storm: this till had a success.
    logged_in: bool,
}

impl UserState {
    pub fn new(id: usize) -> UserState {
        UserState {
            id,
            ..UserState::default()
        }
    }
}

const MAX_TRACKED_PURCHASES: usize = 64;

fn take_state(user: &mut GooseUser) -> UserState {
    let index = user.weighted_users_index;
    user.get_session_data_mut::<UserState>()
        .map(std::mem::take)
        .unwrap_or_else(|| UserState::new(index))
}

/// Which cards purchases go to.
#[derive(Clone, Copy)]
enum Cards {
    All,
    Hot,
}

fn pick(ctx: &Ctx, cards: Cards) -> usize {
    match cards {
        Cards::All => rand::random_range(0..ctx.ds.purchase_end),
        Cards::Hot => rand::random_range(0..ctx.ds.hot),
    }
}

/// Hundredths as a JSON number with two decimals at most.
fn money(hundredths: u64) -> Value {
    serde_json::Number::from_f64(hundredths as f64 / 100.0).map_or(Value::Null, Value::Number)
}

type TxResult = Result<(), Stop>;

async fn balance_number(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    let path = format!(
        "/api/card/balance/by/{}",
        ctx.ds.number(rand::random_range(0..ctx.ds.active))
    );
    ctx.send(via, Call::get("balance by number", &path, &ctx.pos))
        .await?;
    Ok(())
}

async fn balance_phone(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    let path = format!(
        "/api/card/balance/by/phone/{}",
        ctx.ds.mobile(rand::random_range(0..ctx.ds.active))
    );
    ctx.send(via, Call::get("balance by phone", &path, &ctx.pos))
        .await?;
    Ok(())
}

async fn balance_code(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    let path = format!(
        "/api/card/balance/by/code/{}",
        ctx.ds.code(rand::random_range(0..ctx.ds.active))
    );
    ctx.send(via, Call::get("balance by code", &path, &ctx.pos))
        .await?;
    Ok(())
}

async fn calculate(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    let amount: u64 = rand::random_range(1_000..50_000);
    let body = json!({
        "Number": ctx.ds.number(pick(ctx, Cards::All)),
        "Amount": money(amount),
        "BonusToPay": money(rand::random_range(0..=500)),
    });
    ctx.send(
        via,
        Call::post("calculate", "/api/purchase/calculate", &ctx.pos, body),
    )
    .await?;
    Ok(())
}

/// A purchase paying part in bonuses (write-off), remembered for a later
/// refund or cancel.
async fn confirm_on(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState, cards: Cards) -> TxResult {
    st.seq += 1;
    let id = format!("lt-{}-{}-{}", ctx.run_id, st.id, st.seq);
    let amount: u64 = rand::random_range(1_000..50_000);
    let body = json!({
        "Number": ctx.ds.number(pick(ctx, cards)),
        "PurchaseId": id,
        "Amount": money(amount),
        "BonusToPay": money(rand::random_range(1..=500)),
    });
    ctx.send(
        via,
        Call::post("confirm", "/api/purchase/confirm", &ctx.pos, body),
    )
    .await?;
    st.purchases.push_back(Purchase { id, left: amount });
    if st.purchases.len() > MAX_TRACKED_PURCHASES {
        st.purchases.pop_front();
    }
    Ok(())
}

/// A till's purchase with a hold: the write-off is held while the customer
/// pays, then confirmed with the hold's own Number, Amount and BonusToPay
/// (so it writes off from the reservation), or released 1 time in 10 (a
/// declined card). The same cards and sums as `confirm`, so the cards'
/// balances cover the write-offs. A confirmed purchase is remembered for a
/// later refund or cancel, as `confirm_on` does.
async fn hold_confirm(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    st.seq += 1;
    let id = format!("lt-{}-{}-h{}", ctx.run_id, st.id, st.seq);
    let amount: u64 = rand::random_range(1_000..50_000);
    let number = ctx.ds.number(pick(ctx, Cards::All));
    let bonus = money(rand::random_range(1..=500));
    let hold = json!({
        "Number": number,
        "PurchaseId": id,
        "Amount": money(amount),
        "BonusToPay": bonus.clone(),
    });
    ctx.send(
        via,
        Call::post("hold", "/api/purchase/hold", &ctx.pos, hold),
    )
    .await?;
    if rand::random_range(0..10) == 0 {
        let body = json!({"PurchaseId": id});
        ctx.send(
            via,
            Call::post("release", "/api/purchase/release", &ctx.pos, body),
        )
        .await?;
        return Ok(());
    }
    let body = json!({
        "Number": number,
        "PurchaseId": id,
        "Amount": money(amount),
        "BonusToPay": bonus,
    });
    ctx.send(
        via,
        Call::post("confirm", "/api/purchase/confirm", &ctx.pos, body),
    )
    .await?;
    st.purchases.push_back(Purchase { id, left: amount });
    if st.purchases.len() > MAX_TRACKED_PURCHASES {
        st.purchases.pop_front();
    }
    Ok(())
}

async fn confirm(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    confirm_on(via, ctx, st, Cards::All).await
}

async fn confirm_hot(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    confirm_on(via, ctx, st, Cards::Hot).await
}

/// Gives back part of one of this user's purchases (a purchase first if it
/// has none yet).
async fn refund_on(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState, cards: Cards) -> TxResult {
    if st.purchases.is_empty() {
        confirm_on(via, ctx, st, cards).await?;
    }
    let i = rand::random_range(0..st.purchases.len());
    let p = &mut st.purchases[i];
    let amount = rand::random_range(1..=(p.left / 3).max(1));
    st.seq += 1;
    let body = json!({
        "PurchaseId": p.id,
        "RefundId": format!("lt-{}-{}-r{}", ctx.run_id, st.id, st.seq),
        "Amount": money(amount),
    });
    p.left -= amount;
    if p.left < 100 {
        st.purchases.remove(i);
    }
    ctx.send(
        via,
        Call::post("refund", "/api/purchase/refund", &ctx.pos, body),
    )
    .await?;
    Ok(())
}

async fn refund(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    refund_on(via, ctx, st, Cards::All).await
}

async fn refund_hot(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    refund_on(via, ctx, st, Cards::Hot).await
}

/// Cancels this user's oldest purchase (a purchase first if it has none).
async fn cancel_on(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState, cards: Cards) -> TxResult {
    if st.purchases.is_empty() {
        confirm_on(via, ctx, st, cards).await?;
    }
    let Some(p) = st.purchases.pop_front() else {
        return Ok(());
    };
    let body = json!({"PurchaseId": p.id});
    ctx.send(
        via,
        Call::post("cancel", "/api/purchase/cancel", &ctx.pos, body),
    )
    .await?;
    Ok(())
}

async fn cancel(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    cancel_on(via, ctx, st, Cards::All).await
}

async fn cancel_hot(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    cancel_on(via, ctx, st, Cards::Hot).await
}

/// The contact centre: looks a card up and blocks it (lost, or refusal to
/// use: reasons a cc_operator may use), or unblocks the card it blocked
/// with the answering reason. A card is held by one user from its block to
/// its unblock.
async fn call_centre(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    if let Some((i, reason)) = st.cc_card.take() {
        return unblock(via, ctx, i, reason).await;
    }
    let free = ctx
        .cc_pool
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front();
    let Some(i) = free else {
        // More users than call-centre cards: this user only looks up.
        return balance_number(via, ctx, st).await;
    };
    let number = ctx.ds.number(i);
    let path = format!("/api/card/balance/by/{number}");
    let b = match ctx
        .send(
            via,
            Call::get("balance by number [call centre]", &path, &ctx.cc),
        )
        .await
    {
        Ok(b) => b,
        Err(e) => {
            release(ctx, i);
            return Err(e);
        }
    };
    match card_state(&b).0.as_str() {
        "2" => {
            let reason = if rand::random::<bool>() { "0" } else { "3" };
            let body = json!({"Number": number, "BlockReasonCode": reason});
            match ctx
                .send(via, Call::post("block", "/api/card/block", &ctx.cc, body))
                .await
            {
                Ok(_) => st.cc_card = Some((i, reason)),
                Err(e) => {
                    release(ctx, i);
                    return Err(e);
                }
            }
            Ok(())
        }
        // Left blocked by a run that stopped half-way.
        "3" => match b["BlockReasonCode"].as_str() {
            Some("0") => unblock(via, ctx, i, "0").await,
            Some("3") => unblock(via, ctx, i, "3").await,
            // Not ours to unblock: leave the card out of the pool.
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn unblock(via: &mut Via<'_>, ctx: &Ctx, i: usize, reason: &str) -> TxResult {
    let body = json!({"Number": ctx.ds.number(i), "UnBlockReasonCode": reason});
    let r = ctx
        .send(
            via,
            Call::post("unblock", "/api/card/unblock", &ctx.cc, body),
        )
        .await;
    release(ctx, i);
    r.map(|_| ())
}

fn release(ctx: &Ctx, i: usize) {
    ctx.cc_pool
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(i);
}

/// Takes the next card of the New pool; `None` when it is used up.
fn take_new(ctx: &Ctx) -> Option<usize> {
    let i = ctx.next_new.fetch_add(1, Ordering::Relaxed);
    if i < ctx.ds.cards {
        Some(i)
    } else {
        ctx.new_exhausted.store(true, Ordering::Relaxed);
        None
    }
}

/// One step of a new card's life (the trickle of pos-mix): scan, issue,
/// register the customer, bind, activate.
async fn lifecycle_step(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    let (i, stage) = match st.life.take() {
        Some(life) => life,
        None => match take_new(ctx) {
            Some(i) => (i, Stage::Scan),
            // The pool is used up: keep the mix, read a balance instead.
            None => return balance_number(via, ctx, st).await,
        },
    };
    let next = step(via, ctx, i, stage).await?;
    st.life = next.map(|s| (i, s));
    Ok(())
}

async fn step(via: &mut Via<'_>, ctx: &Ctx, i: usize, stage: Stage) -> Result<Option<Stage>, Stop> {
    let number = ctx.ds.number(i);
    Ok(match stage {
        Stage::Scan => {
            let path = format!("/api/card/balance/by/{number}");
            let b = ctx
                .send(via, Call::get("new card: scan", &path, &ctx.pos))
                .await?;
            match card_state(&b) {
                (s, _) if s == "0" => Some(Stage::Issue),
                (s, false) if s == "1" => Some(Stage::Contact),
                (s, true) if s == "1" => Some(Stage::Activate),
                // Taken by an earlier run: the next call takes another card.
                _ => None,
            }
        }
        Stage::Issue => {
            let path = format!("/api/card/issue?Number={number}");
            ctx.send(via, Call::get("issue", &path, &ctx.pos)).await?;
            Some(Stage::Contact)
        }
        Stage::Contact => {
            ctx.send(
                via,
                Call::post("contact", "/api/contact", &ctx.pos, ctx.ds.contact_body(i)),
            )
            .await?;
            Some(Stage::Bind)
        }
        Stage::Bind => {
            let body = json!({"Number": number, "MobileNumber": ctx.ds.mobile(i)});
            ctx.send(
                via,
                Call::post("bindto", "/api/card/bindto", &ctx.pos, body),
            )
            .await?;
            Some(Stage::Activate)
        }
        Stage::Activate => {
            let path = format!("/api/card/active?Number={number}");
            ctx.send(via, Call::get("active", &path, &ctx.pos)).await?;
            None
        }
    })
}

/// A whole new card's life in one pass: issue → contact → bind → activate
/// → block (lost) → unblock (found) → balance.
async fn lifecycle_card(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    // Skip cards an earlier run took (a bounded number per pass).
    for _ in 0..64 {
        let Some(i) = take_new(ctx) else {
            // Nothing left to measure: end the run (it fails on this error)
            // rather than spin through empty passes.
            const WHY: &str = "the New card pool is used up: prepare more --cards";
            let now = std::time::Instant::now();
            ctx.rec.record(&crate::record::Sample {
                name: "new card: scan",
                due: now,
                sent: now,
                done: now,
                arrival: false,
                error: Some("LifecyclePoolExhausted"),
            });
            ctx.stop.store(true, Ordering::Relaxed);
            if matches!(via, Via::Goose(_)) {
                goose::trigger_killswitch(WHY);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Err(Stop::Answer(WHY.into()));
        };
        let mut stage = Some(Stage::Scan);
        let mut moved = false;
        while let Some(s) = stage {
            stage = step(via, ctx, i, s).await?;
            moved |= stage.is_some();
        }
        if !moved {
            continue;
        }
        let number = ctx.ds.number(i);
        let body = json!({"Number": number, "BlockReasonCode": "0"});
        ctx.send(via, Call::post("block", "/api/card/block", &ctx.cc, body))
            .await?;
        let body = json!({"Number": number, "UnBlockReasonCode": "0"});
        ctx.send(
            via,
            Call::post("unblock", "/api/card/unblock", &ctx.cc, body),
        )
        .await?;
        let path = format!("/api/card/balance/by/{number}");
        ctx.send(via, Call::get("balance by number", &path, &ctx.pos))
            .await?;
        return Ok(());
    }
    Ok(())
}

async fn health(via: &mut Via<'_>, ctx: &Ctx, _st: &mut UserState) -> TxResult {
    ctx.send(via, Call::get("health", "/health", "")).await?;
    Ok(())
}

/// restart-storm: each till reads balances with its own login.
async fn till_balance(via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
    let auth = &ctx.tills[st.id % ctx.tills.len()];
    let path = format!(
        "/api/card/balance/by/{}",
        ctx.ds.number(rand::random_range(0..ctx.ds.active))
    );
    ctx.send(via, Call::get("balance by number [till]", &path, auth))
        .await?;
    if !st.logged_in {
        st.logged_in = true;
        if ctx.tills_in.fetch_add(1, Ordering::Relaxed) + 1 == ctx.tills.len() {
            if let Some(t) = &ctx.timeline {
                ctx.all_tills_in_ms
                    .store(t.elapsed_ms().max(1), Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// One kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    BalanceNumber,
    BalancePhone,
    BalanceCode,
    Calculate,
    Confirm,
    ConfirmHot,
    HoldConfirm,
    Refund,
    RefundHot,
    Cancel,
    CancelHot,
    CallCentre,
    NewCardStep,
    LifecycleCard,
    Health,
    Till,
}

impl Tx {
    pub async fn run(self, via: &mut Via<'_>, ctx: &Ctx, st: &mut UserState) -> TxResult {
        match self {
            Tx::BalanceNumber => balance_number(via, ctx, st).await,
            Tx::BalancePhone => balance_phone(via, ctx, st).await,
            Tx::BalanceCode => balance_code(via, ctx, st).await,
            Tx::Calculate => calculate(via, ctx, st).await,
            Tx::Confirm => confirm(via, ctx, st).await,
            Tx::ConfirmHot => confirm_hot(via, ctx, st).await,
            Tx::HoldConfirm => hold_confirm(via, ctx, st).await,
            Tx::Refund => refund(via, ctx, st).await,
            Tx::RefundHot => refund_hot(via, ctx, st).await,
            Tx::Cancel => cancel(via, ctx, st).await,
            Tx::CancelHot => cancel_hot(via, ctx, st).await,
            Tx::CallCentre => call_centre(via, ctx, st).await,
            Tx::NewCardStep => lifecycle_step(via, ctx, st).await,
            Tx::LifecycleCard => lifecycle_card(via, ctx, st).await,
            Tx::Health => health(via, ctx, st).await,
            Tx::Till => till_balance(via, ctx, st).await,
        }
    }
}

/// A scenario's transactions: (kind, name, weight).
pub fn mix(name: ScenarioName) -> Vec<(Tx, &'static str, usize)> {
    match name {
        ScenarioName::PosMix => vec![
            (Tx::BalanceNumber, "balance by number", 42),
            (Tx::BalancePhone, "balance by phone", 25),
            (Tx::BalanceCode, "balance by code", 25),
            (Tx::Calculate, "calculate", 40),
            (Tx::Confirm, "confirm", 36),
            (Tx::Refund, "refund", 4),
            (Tx::Cancel, "cancel", 4),
            (Tx::CallCentre, "call centre", 16),
            (Tx::NewCardStep, "new card", 1),
        ],
        ScenarioName::ReadOnly => vec![
            (Tx::BalanceNumber, "balance by number", 50),
            (Tx::BalancePhone, "balance by phone", 20),
            (Tx::BalanceCode, "balance by code", 20),
            (Tx::Calculate, "calculate", 10),
        ],
        ScenarioName::WriteHeavy => vec![
            (Tx::ConfirmHot, "confirm", 5),
            (Tx::RefundHot, "refund", 3),
            (Tx::CancelHot, "cancel", 4),
        ],
        ScenarioName::Lifecycle => vec![(Tx::LifecycleCard, "new card", 1)],
        ScenarioName::RestartStorm => vec![(Tx::Till, "till", 1)],
        ScenarioName::BalanceNumber => vec![(Tx::BalanceNumber, "balance by number", 1)],
        ScenarioName::BalancePhone => vec![(Tx::BalancePhone, "balance by phone", 1)],
        ScenarioName::BalanceCode => vec![(Tx::BalanceCode, "balance by code", 1)],
        ScenarioName::Confirm => vec![(Tx::Confirm, "confirm", 1)],
        ScenarioName::HoldConfirm => vec![(Tx::HoldConfirm, "hold-confirm", 1)],
        ScenarioName::Health => vec![(Tx::Health, "health", 1)],
    }
}

/// The goose scenario for `name` (closed model): each transaction of the
/// mix with its weight; the user's state is taken out for the call and put
/// back.
pub fn build(
    name: ScenarioName,
    ctx: &Arc<Ctx>,
    till_interval: Duration,
) -> Result<Scenario, GooseError> {
    let mut s = Scenario::new(name.as_str());
    for (tx, tx_name, weight) in mix(name) {
        let ctx = ctx.clone();
        let f: TransactionFunction = Arc::new(move |user| {
            let ctx = ctx.clone();
            Box::pin(async move {
                let mut st = take_state(user);
                let result = tx.run(&mut Via::Goose(user), &ctx, &mut st).await;
                user.set_session_data(st);
                result.map_err(Into::into)
            })
        });
        s = s.register_transaction(Transaction::new(f).set_name(tx_name).set_weight(weight)?);
    }
    if name == ScenarioName::RestartStorm {
        s = s.set_wait_time(till_interval, till_interval)?;
    }
    Ok(s)
}
