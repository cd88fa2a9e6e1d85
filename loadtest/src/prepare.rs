//! Loads the data set through the public API: cards in bulk, then for each
//! active card issue → contact → bind → activate → manual bonuses, many
//! cards at once. Idempotent: a card is moved on from whatever state it is
//! in (an earlier prepare, or a run that stopped half-way), so preparing
//! twice changes nothing the second time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{card_state, Api, Creds};
use crate::dataset::Dataset;

const CHUNK: usize = 20_000;

#[derive(Debug, Default, Serialize)]
pub struct Prepared {
    pub cards_created: u64,
    pub cards_existing: u64,
    pub activated: usize,
    pub already_active: usize,
    pub unblocked: usize,
    pub contacts: usize,
    pub bonus_lots: usize,
    /// New cards left for issue/bind/activate.
    pub new_pool_left: usize,
    pub seconds: f64,
}

#[derive(Default)]
struct Counters {
    activated: AtomicUsize,
    already_active: AtomicUsize,
    unblocked: AtomicUsize,
    bonus_lots: AtomicUsize,
    contacts: AtomicUsize,
}

pub async fn prepare(
    api: &Api,
    creds: &Creds,
    ds: &Dataset,
    concurrency: usize,
) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    api.wait_ready(30).await?;
    let mut out = Prepared::default();
    for start in (0..ds.cards).step_by(CHUNK) {
        let batch: Vec<Value> = (start..(start + CHUNK).min(ds.cards))
            .map(|i| json!({"Number": ds.number(i), "CategoryCode": 0, "TypeCode": 0}))
            .collect();
        let r = api
            .call(
                Method::POST,
                "/api/admin/cards",
                &creds.admin,
                Some(&Value::Array(batch)),
            )
            .await?;
        out.cards_created += r["Created"].as_u64().unwrap_or(0);
        out.cards_existing += r["Existing"].as_u64().unwrap_or(0);
        if r["Rejected"].as_u64().unwrap_or(0) > 0 {
            bail!("/api/admin/cards rejected cards: {}", r["RejectedLines"]);
        }
    }

    let counters = Counters::default();
    let today = today_days();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..ds.active)
        .map(|i| activate(api, creds, ds, i, today, &counters))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    let extra: Vec<anyhow::Result<Value>> = stream::iter(ds.active..ds.contacts)
        .map(|i| {
            let body = ds.contact_body(i);
            async move {
                api.call(Method::POST, "/api/contact", &creds.pos, Some(&body))
                    .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for r in extra {
        r?;
        counters.contacts.fetch_add(1, Ordering::Relaxed);
    }
    out.activated = counters.activated.into_inner();
    out.already_active = counters.already_active.into_inner();
    out.unblocked = counters.unblocked.into_inner();
    out.bonus_lots = counters.bonus_lots.into_inner();
    out.contacts = counters.contacts.into_inner();
    out.new_pool_left = ds.cards - first_new(api, creds, ds).await?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Brings active card `i` to Active with its bonuses, from any state.
async fn activate(
    api: &Api,
    creds: &Creds,
    ds: &Dataset,
    i: usize,
    today: i64,
    counters: &Counters,
) -> anyhow::Result<()> {
    let number = ds.number(i);
    let balance = api
        .call(
            Method::GET,
            &format!("/api/card/balance/by/{number}"),
            &creds.admin,
            None,
        )
        .await?;
    let (mut status, bound) = card_state(&balance);
    if status == "3" {
        // Left blocked by a run that stopped between block and unblock.
        let reason = balance["BlockReasonCode"].as_str().unwrap_or("");
        if !matches!(reason, "0" | "1" | "2" | "3") {
            bail!("card {number} is blocked with reason {reason:?} and cannot be unblocked: load a fresh data set (--card-base)");
        }
        let r = api
            .call(
                Method::POST,
                "/api/card/unblock",
                &creds.admin,
                Some(&json!({"Number": number, "UnBlockReasonCode": reason})),
            )
            .await?;
        drop(r);
        counters.unblocked.fetch_add(1, Ordering::Relaxed);
        status = card_state(
            &api.call(
                Method::GET,
                &format!("/api/card/balance/by/{number}"),
                &creds.admin,
                None,
            )
            .await?,
        )
        .0;
    }
    if status == "2" {
        counters.already_active.fetch_add(1, Ordering::Relaxed);
    } else {
        if status == "0" {
            api.call(
                Method::GET,
                &format!("/api/card/issue?Number={number}"),
                &creds.pos,
                None,
            )
            .await?;
        }
        if !bound {
            api.call(
                Method::POST,
                "/api/contact",
                &creds.pos,
                Some(&ds.contact_body(i)),
            )
            .await?;
            counters.contacts.fetch_add(1, Ordering::Relaxed);
            api.call(
                Method::POST,
                "/api/card/bindto",
                &creds.pos,
                Some(&json!({"Number": number, "MobileNumber": ds.mobile(i)})),
            )
            .await?;
        }
        api.call(
            Method::GET,
            &format!("/api/card/active?Number={number}"),
            &creds.pos,
            None,
        )
        .await?;
        counters.activated.fetch_add(1, Ordering::Relaxed);
    }
    for k in 0..ds.args.bonuses_per_card {
        // Idempotent by OperationId: a second prepare replays, changing nothing.
        let body = json!({
            "Number": number,
            "OperationId": format!("LT-bonus-{number}-{k}"),
            "Amount": ds.args.bonus_amount,
            "TypeCode": 0,
            "ExpireDate": date_string(today + 180 + 90 * k as i64),
            "Comment": "load test",
        });
        api.call(
            Method::POST,
            "/api/card/bonus",
            &creds.marketer,
            Some(&body),
        )
        .await
        .with_context(|| format!("manual bonus {k} on {number}"))?;
        counters.bonus_lots.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The first card of the New pool that is still New. Cards are taken from
/// the pool in order, so the New ones form (almost) a suffix: binary search.
/// `ds.cards` when none is left.
pub async fn first_new(api: &Api, creds: &Creds, ds: &Dataset) -> anyhow::Result<usize> {
    let (mut lo, mut hi) = (ds.active, ds.cards);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let b = api
            .call(
                Method::GET,
                &format!("/api/card/balance/by/{}", ds.number(mid)),
                &creds.pos,
                None,
            )
            .await?;
        if card_state(&b).0 == "0" {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Days since 1970-01-01, UTC.
pub fn today_days() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01); the civil-from-days
/// algorithm of H. Hinnant.
pub fn date_string(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date_string(0), "1970-01-01");
        assert_eq!(super::date_string(19_723), "2024-01-01");
        assert_eq!(super::date_string(19_782), "2024-02-29");
    }
}
