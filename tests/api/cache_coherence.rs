//! Two instances on one store, each with its record cache (issue 7): a
//! write answered by one is seen by the other's next reads within a small
//! bound. Every pair writes on instance B (a manual accrual of 1.00) and then
//! reads the balance on instance A, which has the card cached from the pair
//! before; a stale first read is retried until it shows the write, and the
//! delay is recorded. The test asserts each pair converges within
//! `BOUND` (generous: the machine is shared) and prints the worst delay and
//! how many first reads were stale — the numbers of docs/performance.md.
//!
//! Needs a Redis backend: the memory store lives inside one instance and
//! has no cache to be coherent.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const PAIRS: usize = 1_000;
const BOUND: Duration = Duration::from_secs(2);

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("an amount: {v}")) * 100.0).round() as i64
}

/// Active bonuses of the card, in hundredths.
fn active(balance: &Value) -> i64 {
    balance["Bonuses"]
        .as_array()
        .unwrap_or_else(|| panic!("Bonuses: {balance}"))
        .iter()
        .filter(|b| b["StatusCode"] == "0")
        .map(|b| cents(&b["Amount"]))
        .sum()
}

async fn pair_of_apps() -> (TestApp, TestApp) {
    require_shared_store();
    let prefix = unique_prefix();
    let p = prefix.clone();
    let a = spawn_with(move |s| use_backend(s, &p)).await;
    let b = spawn_with(move |s| use_backend(s, &prefix)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_write_on_one_instance_is_read_on_the_other_within_a_bound() {
    let (a, writer) = pair_of_apps().await;
    let (number, _) = a.card_in(State::Active).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let mut expected = active(&a.balance(&number).await.body);
    let mut worst = Duration::ZERO;
    let mut stale_first_reads = 0;
    for i in 0..PAIRS {
        // Warm A's cache with the state before the write.
        a.balance(&number).await.ok();
        writer
            .post(
                MARKETER,
                "/api/card/bonus",
                json!({
                    "Number": number, "OperationId": format!("coh-{i}-{number}"),
                    "Amount": 1, "TypeCode": 0, "ActiveFrom": today,
                }),
            )
            .await
            .ok();
        expected += 100;
        let written = Instant::now();
        let mut first = true;
        loop {
            let r = a.balance(&number).await;
            r.ok();
            let seen = active(&r.body);
            if seen == expected {
                break;
            }
            assert!(
                seen < expected,
                "pair {i}: more than was written: {seen} > {expected}"
            );
            if first {
                stale_first_reads += 1;
                first = false;
            }
            assert!(
                written.elapsed() < BOUND,
                "pair {i}: instance A still shows {seen} (expected {expected}) {:?} after B's answer",
                written.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !first {
            worst = worst.max(written.elapsed());
        }
    }
    eprintln!(
        "cache coherence over {PAIRS} write(B)/read(A) pairs: {stale_first_reads} stale first reads, worst delay {worst:?}"
    );
}
