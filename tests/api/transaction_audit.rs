//! `/api/card/transactions` keeps the history's audit fields (`Login`,
//! `Role`, `Comment`) from pos and client, who may not read the history
//! (docs/api.md §9; issue 28, item 9).

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn pos_and_client_see_transactions_without_their_audit_fields() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.accrue(&number, "vip-1", json!(5), json!({"Comment": "VIP list"}))
        .await
        .ok();
    let path = format!("/api/card/transactions/{number}");
    for login in [POS, CLIENT] {
        let r = app.get(login, &path).await;
        r.ok();
        let items = r.body["Items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{}", r.body);
        for item in items {
            for audit in ["Login", "Role", "Comment"] {
                assert!(item.get(audit).is_none(), "{login} sees {audit}: {item}");
            }
        }
    }
    let r = app.get(ADMIN, &path).await;
    r.ok();
    assert_eq!(r.body["Items"][0]["Login"], MARKETER);
    assert_eq!(r.body["Items"][0]["Comment"], "VIP list");
}
