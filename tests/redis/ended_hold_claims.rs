//! A PurchaseId whose hold is over (released, or expired and cleared from
//! the card by a later write) stays bound to its card when a confirm of it
//! is refused after taking its claim over (issue 24, holds review). Such a
//! confirm finds the claim under the ended hold's token, takes it over,
//! loses the card's compare-and-set to another purchase and is refused on
//! the fresh card: its refusal freed the claim, although the card still
//! keeps the hold's answers (a release's retry finds the card through the
//! claim). Another card could then take the PurchaseId. Deterministic: two
//! engine instances on one store, the other purchase run at the refused
//! confirm's claim (`interleavings::HookStore`).

use std::sync::Arc;

use loyalty::engine::{Clock, Command, HoldRequest, Ops, Reply};
use loyalty::store::memory::MemoryStore;
use loyalty::store::{Index, Store};
use time::Duration;

use crate::engine_settings::{admin, ops_settings as settings};
use crate::interleavings::{active_card_with, card, confirm_of, money, store_at, At, HookStore};
use crate::redis_server::{free_port, RedisCluster, RedisServer};

#[derive(Debug, Clone, Copy)]
enum Ended {
    /// Released by its own request.
    Released,
    /// Past its end, and freed by a later write of the card.
    Expired,
}

fn hold_of(number: &str, id: &str, amount: i64, pay: i64) -> Command {
    Command::Hold(HoldRequest {
        actor: admin(),
        number: card(number),
        purchase_id: id.to_owned(),
        amount: money(amount),
        bonus_to_pay: money(pay),
        date: None,
        hold_secs: None,
    })
}

fn release_of(number: &str, id: &str) -> Command {
    Command::Release {
        actor: admin(),
        number: card(number),
        purchase_id: id.to_owned(),
    }
}

async fn a_refused_confirm_keeps_an_ended_holds_purchase_id(
    store: Arc<dyn Store>,
    tag: &str,
    ended: Ended,
) {
    let hook = Arc::new(HookStore::new(store.clone()));
    // A's clock runs two hours ahead: B's holds (900 s) are over for A.
    let a = Ops::new(hook.clone(), settings(30_000, 3600))
        .with_clock(Clock::skewed(Duration::hours(2)));
    let b = Arc::new(Ops::new(store.clone(), settings(30_000, 3600)));
    let x = active_card_with(&*store, &b, &format!("84000000000{tag}"), tag, 10_000).await;
    let y = active_card_with(&*store, &b, &format!("84000000010{tag}"), tag, 10_000).await;
    let (x, y) = (x.as_str().to_owned(), y.as_str().to_owned());
    let p = format!("PH{tag}");
    b.execute(hold_of(&x, &p, 20_000, 4_000)).await.unwrap();
    match ended {
        Ended::Released => {
            b.execute(release_of(&x, &p)).await.unwrap();
        }
        // A's write of another purchase frees the hold it sees expired.
        Ended::Expired => {
            a.execute(confirm_of(&card(&x), &format!("PZ{tag}"), 1_000, 0))
                .await
                .unwrap();
        }
    }
    // A's confirm of 60 from the 100 left Active: its first write finds
    // the claim under the ended hold's token (skipped: that one does not
    // take it), its read takes the claim over; B's purchase of 50 lands
    // just then, and A's write loses to it.
    let (b2, x2, spend) = (b.clone(), card(&x), format!("PS{tag}"));

    hook.on(
        At::IndexClaim(Index::Purchase, p.clone()),
        1,
        Box::new(move || {
            Box::pin(async move {
                b2.execute(confirm_of(&x2, &spend, 10_000, 5_000))
                    .await
                    .unwrap();
            })
        }),
    );
    let refused = a.execute(confirm_of(&card(&x), &p, 20_000, 6_000)).await;
    let claim = store.index_get(Index::Purchase, &p).await.unwrap();
    let confirmed_elsewhere = b.execute(confirm_of(&card(&y), &p, 20_000, 0)).await;
    let held_elsewhere = b.execute(hold_of(&y, &p, 20_000, 0)).await;
    println!(
        "[{tag} {ended:?}] A: {refused:?}\n claim: {claim:?}\n confirm on another card: \
         {confirmed_elsewhere:?}\n hold on another card: {held_elsewhere:?}"
    );
    assert!(
        format!("{refused:?}").contains("InsufficientBonuses"),
        "[{tag} {ended:?}] {refused:?}"
    );
    assert!(
        claim.is_some_and(|c| c.owner.starts_with(x.as_str())),
        "[{tag} {ended:?}] the refused confirm freed the PurchaseId of a hold the card keeps"
    );
    for (what, answer) in [("confirm", &confirmed_elsewhere), ("hold", &held_elsewhere)] {
        assert!(
            format!("{answer:?}").contains("IdempotencyConflict"),
            "[{tag} {ended:?}] a {what} of the ended hold's PurchaseId on another card: {answer:?}"
        );
    }
    if let Ended::Released = ended {
        // The release's retry answers what the release did.
        match b.execute(release_of(&x, &p)).await {
            Ok(Reply::Released(r)) => assert_eq!(r.released, money(4_000), "[{tag}] {r:?}"),
            other => panic!("[{tag}] the release's retry: {other:?}"),
        }
    }
    // On its own card the PurchaseId is still a plain confirm's.
    match b.execute(confirm_of(&card(&x), &p, 20_000, 1_000)).await {
        Ok(Reply::Confirmed(c)) => assert_eq!(c.bonus_to_pay, money(1_000)),
        other => panic!("[{tag} {ended:?}] the confirm on its card: {other:?}"),
    }
}

#[tokio::test]
async fn released_hold_claim_memory() {
    a_refused_confirm_keeps_an_ended_holds_purchase_id(
        Arc::new(MemoryStore::new()),
        "1",
        Ended::Released,
    )
    .await;
}

#[tokio::test]
async fn expired_hold_claim_memory() {
    a_refused_confirm_keeps_an_ended_holds_purchase_id(
        Arc::new(MemoryStore::new()),
        "2",
        Ended::Expired,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn ended_hold_claim_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    for (tag, ended) in [("3", Ended::Released), ("4", Ended::Expired)] {
        a_refused_confirm_keeps_an_ended_holds_purchase_id(
            store_at(vec![server.url()]).await,
            tag,
            ended,
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn ended_hold_claim_cluster() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = RedisCluster::start(dir.path(), false);
    for (tag, ended) in [("5", Ended::Released), ("6", Ended::Expired)] {
        a_refused_confirm_keeps_an_ended_holds_purchase_id(
            store_at(cluster.urls()).await,
            tag,
            ended,
        )
        .await;
    }
}
