//! Deterministic interleavings of two engine instances on one store: a
//! store wrapper runs the other instance's command at a chosen store call
//! of the first. Each test is a hole an adversarial review of the
//! exactly-once work (issue 12) found, reproduced before it was closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loyalty::domain::card::Change;
use loyalty::domain::{
    Actor, Amount, BonusType, Card, CardNumber, CardType, Category, Contact, ContactCode,
    ContactPatch, HistoryEntry, MobileNumber, Role,
};
use loyalty::engine::{Command, ConfirmRequest, ManualBonusRequest, Ops, Reply};
use loyalty::store::memory::MemoryStore;
use loyalty::store::redis::{RedisSettings, RedisStore};
use loyalty::store::{
    CardRecordWrite, CardStore, Cas, Claim, ContactStore, HistoryPage, Index, PurchaseCommit,
    PurchaseWrite, RecordRead, RecordStore, Store, StoreError, Versioned,
};
use time::OffsetDateTime;

use crate::engine_settings::{admin, ops_settings as settings};
use crate::redis_server::{free_port, RedisServer};

pub(crate) type Action = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum At {
    GetCard(String),
    IndexGet(Index, String),
    IndexClaim(Index, String),
    UpdateCard(String),
}

struct Hook {
    at: At,
    skip: usize,
    action: Option<Action>,
}

pub(crate) struct HookStore {
    inner: Arc<dyn Store>,
    hooks: Mutex<Vec<Hook>>,
}

impl HookStore {
    pub(crate) fn new(inner: Arc<dyn Store>) -> HookStore {
        HookStore {
            inner,
            hooks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn on(&self, at: At, skip: usize, action: Action) {
        self.hooks.lock().unwrap().push(Hook {
            at,
            skip,
            action: Some(action),
        });
    }

    async fn fire(&self, at: At) {
        let action = {
            let mut hooks = self.hooks.lock().unwrap();
            let mut found = None;
            for h in hooks.iter_mut() {
                if h.at == at && h.action.is_some() {
                    if h.skip > 0 {
                        h.skip -= 1;
                    } else {
                        found = h.action.take();
                    }
                    break;
                }
            }
            found
        };
        if let Some(a) = action {
            a().await;
        }
    }
}

#[async_trait]
impl CardStore for HookStore {
    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        self.fire(At::GetCard(number.as_str().to_owned())).await;
        self.inner.get_card(number).await
    }

    async fn update_card(
        &self,
        card: &Card,
        v: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.inner.update_card(card, v, entry).await
    }

    async fn update_card_with(
        &self,
        card: &Card,
        v: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl: u64,
    ) -> Result<Cas, StoreError> {
        self.fire(At::UpdateCard(card.number.as_str().to_owned()))
            .await;
        self.inner
            .update_card_with(card, v, entry, records, ttl)
            .await
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        // The steps the purchase's one write stands for, in their order.
        self.fire(At::IndexClaim(
            Index::Purchase,
            write.purchase_id.to_owned(),
        ))
        .await;
        self.fire(At::UpdateCard(write.card.number.as_str().to_owned()))
            .await;
        self.inner.commit_purchase(write).await
    }

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.inner.card_history(number, before, limit).await
    }
}

#[async_trait]
impl RecordStore for HookStore {
    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.get_card_record(number, key).await
    }

    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        self.fire(At::GetCard(number.as_str().to_owned())).await;
        self.inner.get_card_with_record(number, key).await
    }
}

#[async_trait]
impl ContactStore for HookStore {
    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.inner.get_contact(code).await
    }
    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.inner.get_contact_cached(code).await
    }
    /// Hooked as the index read it stands in for: an interleaving chosen
    /// at an index read happens there whether the engine reads through the
    /// cache or not.
    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.fire(At::IndexGet(index, key.to_owned())).await;
        self.inner.index_get_cached(index, key).await
    }
    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        self.inner.get_contact_slot(code).await
    }

    async fn put_contact(&self, c: &Contact, v: u64) -> Result<Cas, StoreError> {
        self.inner.put_contact(c, v).await
    }

    async fn fence_contact(&self, code: &ContactCode, v: u64) -> Result<Cas, StoreError> {
        self.inner.fence_contact(code, v).await
    }

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.fire(At::IndexGet(index, key.to_owned())).await;
        self.inner.index_get(index, key).await
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        self.fire(At::IndexClaim(index, key.to_owned())).await;
        self.inner.index_claim(index, key, expected, owner).await
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.index_release(index, key, owner).await
    }
}

loyalty::forward_health!(HookStore, |s| s.inner);
loyalty::forward_bulk!(HookStore, |s| s.inner);

fn operator() -> Actor {
    Actor {
        login: "op".into(),
        role: Role::CcOperator,
    }
}

pub(crate) fn card(n: &str) -> CardNumber {
    CardNumber::from_trusted(n.to_owned())
}

pub(crate) fn money(h: i64) -> Amount {
    Amount::from_hundredths(h).unwrap()
}

async fn new_cards(store: &dyn Store, ops: &Ops, numbers: &[&CardNumber]) {
    let cards: Vec<Card> = numbers
        .iter()
        .map(|n| Card::new((*n).clone(), Category::Plastic, CardType::Bonus))
        .collect();
    store.insert_cards(&cards).await.unwrap();
    for n in numbers {
        ops.execute(Command::Issue {
            actor: admin(),
            number: (*n).clone(),
        })
        .await
        .unwrap();
    }
}

async fn contact(ops: &Ops, code: &str, mobile: &str) -> (ContactCode, MobileNumber) {
    let code = ContactCode::from_trusted(code.to_owned());
    let mobile = MobileNumber::parse(mobile).unwrap();
    ops.execute(Command::UpsertContact {
        code: code.clone(),
        patch: ContactPatch {
            name: Some("n".into()),
            mobile: Some(mobile.clone()),
            ..Default::default()
        },
    })
    .await
    .unwrap();
    (code, mobile)
}

fn bind(number: &CardNumber, mobile: &MobileNumber) -> Command {
    Command::BindTo {
        actor: admin(),
        number: number.clone(),
        mobile: mobile.clone(),
    }
}

/// A takeover that fences its *own* card continues with the
/// card as the fence read it, without checking it is still bindable: a
/// binding to another contact made meanwhile is overwritten.
#[tokio::test]
async fn fence_of_own_card_overwrites_a_concurrent_binding() {
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let hook = Arc::new(HookStore::new(inner.clone()));
    // A: every claim is past its lease (a stale claim, as after a crash).
    let a = Ops::new(hook.clone(), settings(-1, 3600));
    let b = Arc::new(Ops::new(inner.clone(), settings(30_000, 3600)));
    let x = card("6000000000001");
    new_cards(&*inner, &b, &[&x]).await;
    let (c1, m1) = contact(&b, "C1", "79160000001").await;
    let (c2, m2) = contact(&b, "C2", "79160000002").await;
    // A dead attempt (another instance) claimed C1 for X and never wrote X.
    inner
        .index_claim(
            Index::ContactCard,
            c1.as_str(),
            None,
            &format!("{}#00000001deadbeef", x.as_str()),
        )
        .await
        .unwrap()
        .unwrap();
    // While A looks at C1's claim, B binds X to C2.
    let (b2, x2, m2b) = (b.clone(), x.clone(), m2.clone());
    hook.on(
        At::IndexGet(Index::ContactCard, c1.as_str().to_owned()),
        0,
        Box::new(move || {
            Box::pin(async move {
                b2.execute(bind(&x2, &m2b)).await.unwrap();
            })
        }),
    );
    let ra = a.execute(bind(&x, &m1)).await;
    let stored = inner.get_card(&x).await.unwrap().unwrap().value;
    let c2_claim = inner
        .index_get(Index::ContactCard, c2.as_str())
        .await
        .unwrap();
    println!(
        "A answered {ra:?}; X.contact = {:?}; C2's index = {c2_claim:?}",
        stored.contact
    );
    assert_eq!(
        stored.contact.as_ref(),
        Some(&c2),
        "B's bindto X→C2 answered OK, then A's bindto X→C1 overwrote it (A answered {ra:?})"
    );
}

/// A refund's outcome expires with its own TTL while a later
/// refund keeps refreshing the purchase record's TTL: the retried RefundId
/// is applied a second time.
async fn refund_retried_after_its_outcome_expired(store: Arc<dyn Store>, tag: &str) {
    let ops = Ops::new(store.clone(), settings(30_000, 2));
    let x = card(&format!("70000000000{tag}"));
    new_cards(&*store, &ops, &[&x]).await;
    let (_c, m) = contact(&ops, &format!("R{tag}"), &format!("7916100000{tag}")).await;
    ops.execute(bind(&x, &m)).await.unwrap();
    let confirm = ConfirmRequest {
        actor: admin(),
        number: x.clone(),
        purchase_id: format!("P{tag}"),
        amount: money(100_000),
        bonus_to_pay: Amount::ZERO,
        date: None,
    };
    ops.execute(Command::Confirm(confirm)).await.unwrap();
    let refund = |id: &str, h: i64| Command::Refund {
        actor: admin(),
        number: x.clone(),
        purchase_id: format!("P{tag}"),
        refund_id: id.to_owned(),
        amount: money(h),
    };
    let first = ops.execute(refund("R1", 40_000)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ops.execute(refund("R2", 10_000)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = ops.execute(refund("R1", 40_000)).await;
    let Reply::Balance(b) = ops
        .execute(Command::Balance { number: x.clone() })
        .await
        .unwrap()
    else {
        panic!()
    };
    let today = OffsetDateTime::now_utc().date();
    println!(
        "[{tag}] first R1: {first:?}\n[{tag}] retried R1: {again:?}\n[{tag}] balance now {}",
        b.card.ledger.unburnt(today)
    );
    // Past the retention the purchase is gone with its outcomes: the retry
    // is refused. What it must never be is a second application.
    match &again {
        Ok(Reply::Reversed(r)) => assert_eq!(
            Some(r),
            match &first {
                Reply::Reversed(f) => Some(f),
                _ => None,
            },
            "[{tag}] RefundId R1 applied twice: RefundedTotal {} for refunds of 400 + 100",
            r.refunded_total
        ),
        Err(e) => assert!(
            format!("{e:?}").contains("PurchaseNotFound"),
            "[{tag}] {e:?}"
        ),
        other => panic!("[{tag}] {other:?}"),
    }
}

#[tokio::test]
async fn refund_ttl_memory() {
    refund_retried_after_its_outcome_expired(Arc::new(MemoryStore::new()), "1").await;
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn refund_ttl_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = RedisStore::connect(RedisSettings {
        urls: vec![server.url()],
        key_prefix: "P".into(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        cache_capacity: 0,
        cache_segments: 1,
        sentinel: None,
        min_replicas_acked: 0,
        replica_ack_timeout: std::time::Duration::ZERO,
        wait_pool_size: 1,
        access: Default::default(),
    })
    .await
    .unwrap();
    refund_retried_after_its_outcome_expired(Arc::new(store), "2").await;
}

/// A block (reason 4) whose pre-step read the card before a
/// concurrent bind landed blocks a card with an unfinished inbound
/// transfer; its replacement then marks it and the late inbound lots land
/// on a replaced card: stranded.
#[tokio::test]
async fn lots_stranded_on_a_replaced_card() {
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let hook = Arc::new(HookStore::new(inner.clone()));
    let a = Ops::new(hook.clone(), settings(30_000, 3600));
    let b = Ops::new(inner.clone(), settings(30_000, 3600));
    let (v, w, z) = (
        card("8000000000001"),
        card("8000000000002"),
        card("8000000000003"),
    );
    new_cards(&*inner, &b, &[&v, &w, &z]).await;
    let (c, m) = contact(&b, "S1", "79162000001").await;
    b.execute(bind(&v, &m)).await.unwrap();
    b.execute(Command::ManualBonus(ManualBonusRequest {
        actor: admin(),
        number: v.clone(),
        operation_id: "seed".into(),
        amount: money(10_000),
        bonus_type: BonusType::ALL[0],
        active_from: None,
        expire_date: None,
        comment: None,
    }))
    .await
    .unwrap();
    b.execute(Command::Block {
        actor: operator(),
        number: v.clone(),
        mobile: None,
        reason_code: "4".into(),
        reason_name: None,
    })
    .await
    .unwrap();
    // Another instance's bindto W (replacing V) lands between A's pre-step
    // read of W and A's block; that instance then stalls (or dies) before
    // its complete_replacement(V, W).
    let v_owner = inner
        .index_get(Index::ContactCard, c.as_str())
        .await
        .unwrap()
        .unwrap()
        .owner;
    let (st, w2, v2, c2) = (inner.clone(), w.clone(), v.clone(), c.clone());
    hook.on(
        At::GetCard(w.as_str().to_owned()),
        1,
        Box::new(move || {
            Box::pin(async move {
                let cur = st.get_card(&w2).await.unwrap().unwrap();
                st.index_claim(
                    Index::ContactCard,
                    c2.as_str(),
                    Some(&v_owner),
                    &format!("{}#00000002cafebabe#{}", w2.as_str(), v2.as_str()),
                )
                .await
                .unwrap()
                .unwrap();
                let Change::Changed { card, entry } =
                    cur.value
                        .bind(&c2, Some(v2.clone()), &admin(), OffsetDateTime::now_utc())
                else {
                    panic!()
                };
                assert_eq!(
                    st.update_card(&card, cur.version, &entry).await.unwrap(),
                    Cas::Applied
                );
            })
        }),
    );
    let blocked = a
        .execute(Command::Block {
            actor: operator(),
            number: w.clone(),
            mobile: None,
            reason_code: "4".into(),
            reason_name: None,
        })
        .await;
    println!("block W: {blocked:?}");
    // The customer gets card Z in W's place.
    let bound = b.execute(bind(&z, &m)).await;
    println!("bindto Z: {bound:?}");
    // Any later read finishes V → W.
    for n in [&v, &w, &z] {
        let _ = b.execute(Command::Balance { number: n.clone() }).await;
    }
    let today = OffsetDateTime::now_utc().date();
    for n in [&v, &w, &z] {
        let c = inner.get_card(n).await.unwrap().unwrap().value;
        println!(
            "{n}: status {:?} replaced_by {:?} replaces {:?} received {:?} outbox {} unburnt {} unfinished {:?}",
            c.status,
            c.replaced_by,
            c.replaces,
            c.received_from,
            c.transfer_out.len(),
            c.ledger.unburnt(today),
            c.unfinished_replacement()
        );
    }
    let zc = inner.get_card(&z).await.unwrap().unwrap().value;
    assert_eq!(
        zc.ledger.unburnt(today),
        money(10_000),
        "the 100 bonuses of V did not reach the contact's current card Z"
    );
}

/// A manual bonus applied on a card, then re-sent with the number of the
/// card that replaced it: answered as the first time, never applied a
/// second time.
#[tokio::test]
async fn a_manual_bonus_retried_on_the_replacing_card_is_not_applied_again() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ops = Ops::new(store.clone(), settings(30_000, 3600));
    let (x, y) = (card("8100000000001"), card("8100000000002"));
    new_cards(&*store, &ops, &[&x, &y]).await;
    let (_c, m) = contact(&ops, "MB1", "79163000001").await;
    ops.execute(bind(&x, &m)).await.unwrap();
    let bonus = |number: &CardNumber| {
        Command::ManualBonus(ManualBonusRequest {
            actor: admin(),
            number: number.clone(),
            operation_id: "welcome".into(),
            amount: money(10_000),
            bonus_type: BonusType::ALL[0],
            active_from: None,
            expire_date: None,
            comment: None,
        })
    };
    let first = ops.execute(bonus(&x)).await.unwrap();
    ops.execute(Command::Block {
        actor: operator(),
        number: x.clone(),
        mobile: None,
        reason_code: "4".into(),
        reason_name: None,
    })
    .await
    .unwrap();
    ops.execute(bind(&y, &m)).await.unwrap();
    // Issue 27, item 4: the replacing card is the same customer's card,
    // so the retry is the same operation — answered, not refused.
    let again = ops.execute(bonus(&y)).await;
    match (&again, &first) {
        (Ok(Reply::Accrued(a)), Reply::Accrued(f)) => assert_eq!(a, f),
        _ => panic!("the same OperationId retried on the replacing card: {again:?}"),
    }
    let today = OffsetDateTime::now_utc().date();
    let held = store.get_card(&y).await.unwrap().unwrap().value;
    assert_eq!(held.ledger.unburnt(today), money(10_000), "{held:?}");
}

async fn redis_store(server: &RedisServer) -> Arc<dyn Store> {
    store_at(vec![server.url()]).await
}

/// A store on the Redis server(s) at `urls` (a cluster's nodes: a cluster).
pub(crate) async fn store_at(urls: Vec<String>) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(RedisSettings {
            urls,
            key_prefix: "P".into(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            cache_capacity: 0,
            cache_segments: 1,
            sentinel: None,
            min_replicas_acked: 0,
            replica_ack_timeout: std::time::Duration::ZERO,
            wait_pool_size: 1,
            access: Default::default(),
        })
        .await
        .unwrap(),
    )
}

/// An Active card holding `bonuses` hundredths of Active cash bonuses.
pub(crate) async fn active_card_with(
    store: &dyn Store,
    ops: &Ops,
    n: &str,
    tag: &str,
    bonuses: i64,
) -> CardNumber {
    let x = card(n);
    new_cards(store, ops, &[&x]).await;
    let (_c, m) = contact(
        ops,
        &format!("C{tag}{n}"),
        &format!("7917{}", &n[n.len() - 7..]),
    )
    .await;
    ops.execute(bind(&x, &m)).await.unwrap();
    ops.execute(Command::Active {
        actor: admin(),
        number: x.clone(),
    })
    .await
    .unwrap();
    ops.execute(Command::ManualBonus(ManualBonusRequest {
        actor: admin(),
        number: x.clone(),
        operation_id: format!("seed-{tag}"),
        amount: money(bonuses),
        bonus_type: BonusType::ALL[0],
        active_from: None,
        expire_date: None,
        comment: None,
    }))
    .await
    .unwrap();
    x
}

pub(crate) fn confirm_of(number: &CardNumber, id: &str, amount: i64, pay: i64) -> Command {
    Command::Confirm(ConfirmRequest {
        actor: admin(),
        number: number.clone(),
        purchase_id: id.to_owned(),
        amount: money(amount),
        bonus_to_pay: money(pay),
        date: None,
    })
}

/// Issue 27, item 3: two confirms each write off 50 of a 60 balance at
/// once (two instances). The loser's rules passed on its first read, so it
/// claimed its PurchaseId; its write lost the race and the re-check
/// refused it. The refusal must give the PurchaseId back: it stored
/// nothing, so the id is free for another card.
async fn a_refused_confirm_gives_its_purchase_id_back(store: Arc<dyn Store>, tag: &str) {
    let hook = Arc::new(HookStore::new(store.clone()));
    let a = Ops::new(hook.clone(), settings(30_000, 3600));
    let b = Arc::new(Ops::new(store.clone(), settings(30_000, 3600)));
    let x = active_card_with(&*store, &b, &format!("82000000000{tag}"), tag, 6_000).await;
    let y = active_card_with(&*store, &b, &format!("82000000010{tag}"), tag, 6_000).await;
    let (pa, pb) = (format!("PA{tag}"), format!("PB{tag}"));
    // B's purchase lands between A's read and A's write.
    let (b2, x2, pb2) = (b.clone(), x.clone(), pb.clone());
    hook.on(
        At::IndexClaim(Index::Purchase, pa.clone()),
        0,
        Box::new(move || {
            Box::pin(async move {
                b2.execute(confirm_of(&x2, &pb2, 10_000, 5_000))
                    .await
                    .unwrap();
            })
        }),
    );
    let refused = a.execute(confirm_of(&x, &pa, 10_000, 5_000)).await;
    assert!(
        format!("{refused:?}").contains("InsufficientBonuses"),
        "[{tag}] {refused:?}"
    );
    let claim = store.index_get(Index::Purchase, &pa).await.unwrap();
    let elsewhere = b.execute(confirm_of(&y, &pa, 10_000, 0)).await;
    let cancel = b
        .execute(Command::Cancel {
            actor: admin(),
            number: x.clone(),
            purchase_id: pa.clone(),
        })
        .await;
    println!("[{tag}] claim left: {claim:?}\n[{tag}] on another card: {elsewhere:?}\n[{tag}] cancel: {cancel:?}");
    assert_eq!(
        claim, None,
        "[{tag}] the refused confirm kept its PurchaseId"
    );
    assert!(
        matches!(elsewhere, Ok(Reply::Confirmed(_))),
        "[{tag}] the refused PurchaseId on another card: {elsewhere:?}"
    );
}

#[tokio::test]
async fn refused_confirm_releases_memory() {
    a_refused_confirm_gives_its_purchase_id_back(Arc::new(MemoryStore::new()), "1").await;
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn refused_confirm_releases_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    a_refused_confirm_gives_its_purchase_id_back(redis_store(&server).await, "2").await;
}

/// Issue 27, item 3, the other side: the released claim must not be one
/// that a twin's purchase lands on. B (writing off 50 of 60) claims PX,
/// loses its write to C's purchase and is refused on its re-read; A, the
/// same PurchaseId on the same card without a write-off, read the card
/// C left, claimed, and writes while B gives its claim back. A's purchase
/// must keep its PurchaseId bound to the card.
async fn a_twin_keeps_the_claim_its_purchase_lands_on(store: Arc<dyn Store>, tag: &str) {
    let hook_a = Arc::new(HookStore::new(store.clone()));
    let hook_b = Arc::new(HookStore::new(store.clone()));
    let a = Arc::new(Ops::new(hook_a.clone(), settings(30_000, 3600)));
    let b = Ops::new(hook_b.clone(), settings(30_000, 3600));
    let c = Arc::new(Ops::new(store.clone(), settings(30_000, 3600)));
    let x = active_card_with(&*store, &c, &format!("83000000000{tag}"), tag, 6_000).await;
    let y = active_card_with(&*store, &c, &format!("83000000010{tag}"), tag, 6_000).await;
    let px = format!("PX{tag}");
    let reached = Arc::new(tokio::sync::Notify::new());
    let go = Arc::new(tokio::sync::Notify::new());
    // A waits at its write until B has answered.
    let (r2, g2) = (reached.clone(), go.clone());
    hook_a.on(
        At::UpdateCard(x.as_str().to_owned()),
        0,
        Box::new(move || {
            Box::pin(async move {
                r2.notify_one();
                g2.notified().await;
            })
        }),
    );
    // When B claims: C's purchase lands, then A reads, claims and stops
    // just before its write.
    let (a2, c2, x2, px2, r3) = (a.clone(), c.clone(), x.clone(), px.clone(), reached.clone());
    let a_task = Arc::new(Mutex::new(None));
    let a_task2 = a_task.clone();
    hook_b.on(
        At::IndexClaim(Index::Purchase, px.clone()),
        0,
        Box::new(move || {
            Box::pin(async move {
                c2.execute(confirm_of(&x2, &format!("PZ{x2}"), 10_000, 5_000))
                    .await
                    .unwrap();
                let a3 = a2.clone();
                let handle =
                    tokio::spawn(async move { a3.execute(confirm_of(&x2, &px2, 10_000, 0)).await });
                *a_task2.lock().unwrap() = Some(handle);
                r3.notified().await;
            })
        }),
    );
    let refused = b.execute(confirm_of(&x, &px, 10_000, 5_000)).await;
    go.notify_one();
    let handle = a_task.lock().unwrap().take().expect("A started");
    let landed = handle.await.unwrap();
    let claim = store.index_get(Index::Purchase, &px).await.unwrap();
    let elsewhere = c.execute(confirm_of(&y, &px, 10_000, 0)).await;
    println!("[{tag}] B: {refused:?}\n[{tag}] A: {landed:?}\n[{tag}] claim: {claim:?}\n[{tag}] on another card: {elsewhere:?}");
    assert!(
        format!("{refused:?}").contains("InsufficientBonuses"),
        "[{tag}] {refused:?}"
    );
    assert!(
        matches!(landed, Ok(Reply::Confirmed(_))),
        "[{tag}] {landed:?}"
    );
    assert!(
        claim.is_some_and(|c| c.owner.starts_with(x.as_str())),
        "[{tag}] A's purchase landed without its PurchaseId bound to the card"
    );
    assert!(
        format!("{elsewhere:?}").contains("IdempotencyConflict"),
        "[{tag}] the PurchaseId of A's purchase was accepted on another card: {elsewhere:?}"
    );
}

#[tokio::test]
async fn twin_keeps_its_claim_memory() {
    a_twin_keeps_the_claim_its_purchase_lands_on(Arc::new(MemoryStore::new()), "1").await;
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn twin_keeps_its_claim_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    a_twin_keeps_the_claim_its_purchase_lands_on(redis_store(&server).await, "2").await;
}
