//! An import is held to the domain's rules (issue 28, item 8): `?merge=true`
//! adds no record to a card it did not create, amounts and a record's time
//! left are bounded, and a merged card's history says it was imported.

use serde_json::{json, Value};

use crate::helpers::*;

fn lines(dump: &str) -> Vec<Value> {
    dump.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn text(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn records_of(dump: &str, number: &str) -> usize {
    lines(dump)
        .iter()
        .filter(|l| l["Kind"] == "record" && l["Number"] == number)
        .count()
}

/// A source store with an Active card that holds bonuses and a purchase
/// (so a record), and its dump.
async fn source_dump() -> (String, String) {
    let source = spawn_app().await;
    let number = source.card_with_bonuses(100).await;
    source
        .confirm(&number, "P-injected", json!(500), json!(50))
        .await
        .ok();
    let dump = source.export_text().await;
    assert_eq!(records_of(&dump, &number), 2, "{dump}");
    (number, dump)
}

#[tokio::test]
async fn a_merge_adds_no_record_to_a_card_it_did_not_create() {
    let (number, dump) = source_dump().await;
    let target = spawn_app().await;
    // The card exists on the target: the dump's purchase is foreign to it.
    target.load_cards(&[number.as_str()]).await;
    let r = target.import("?merge=true", dump).await;
    r.ok();
    assert!(r.body["Rejected"].as_u64().unwrap() >= 2, "{}", r.body);
    assert_eq!(records_of(&target.export_text().await, &number), 0);
    target
        .post(
            POS,
            "/api/purchase/cancel",
            json!({"PurchaseId": "P-injected"}),
        )
        .await
        .expect(404, "PurchaseNotFound");
}

/// The dump with `change` applied to its first line of `kind`.
fn altered(dump: &str, kind: &str, change: impl Fn(&mut Value)) -> String {
    let mut all = lines(dump);
    let line = all.iter_mut().find(|l| l["Kind"] == kind).unwrap();
    change(line);
    text(&all)
}

#[tokio::test]
async fn an_import_refuses_amounts_out_of_bounds_and_an_unbounded_time_left() {
    let (number, dump) = source_dump().await;
    for bad in [json!(-5), json!(i64::MAX)] {
        let dump = altered(&dump, "card", |l| {
            l["Card"]["ledger"]["lots"][0]["amount"] = bad.clone()
        });
        let target = spawn_app().await;
        let r = target.import("", dump).await;
        r.ok();
        assert!(
            r.body["Rejected"].as_u64().unwrap() >= 1,
            "{bad}: {}",
            r.body
        );
        target
            .balance(&number)
            .await
            .expect(404, "CannotFindCardNumber");
    }
    let dump = altered(&dump, "record", |l| l["TtlMs"] = json!(i64::MAX));
    let target = spawn_app().await;
    let r = target.import("", dump).await;
    r.ok();
    assert_eq!(r.body["Rejected"], json!(1), "{}", r.body);
    assert_eq!(records_of(&target.export_text().await, &number), 1);
}

#[tokio::test]
async fn a_merged_card_says_in_its_history_who_imported_it() {
    let (number, dump) = source_dump().await;
    let target = spawn_app().await;
    target.new_card().await;
    target.import("?merge=true", dump).await.ok();
    let newest = &target.history(&number).await[0];
    assert_eq!(newest["Operation"], "import", "{newest}");
    assert_eq!(newest["Login"], ADMIN);
}
