//! Helpers for the card-method suites: block/unblock by contact phone, the
//! full balance read and the card's history.

use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    pub async fn block_by_mobile(&self, login: &str, mobile: &str, reason: &str) -> Resp {
        self.post(
            login,
            "/api/card/block",
            json!({"ContactMobileNumber": mobile, "BlockReasonCode": reason}),
        )
        .await
    }

    pub async fn unblock_by_mobile(&self, login: &str, mobile: &str, reason: &str) -> Resp {
        self.post(
            login,
            "/api/card/unblock",
            json!({"ContactMobileNumber": mobile, "UnBlockReasonCode": reason}),
        )
        .await
    }

    /// The balance answer's body, asserted OK.
    pub async fn card_view(&self, number: &str) -> Value {
        let r = self.balance(number).await;
        r.ok();
        r.body
    }

    /// The card's history items (newest first), read as the administrator.
    pub async fn history(&self, number: &str) -> Vec<Value> {
        let r = self
            .get(ADMIN, &format!("/api/card/history/{number}?limit=500"))
            .await;
        r.ok();
        r.body["Items"]
            .as_array()
            .expect("Items is an array")
            .clone()
    }

    /// Updates a contact's personal data (same Code).
    pub async fn update_contact(&self, code: &str, name: &str, birth_date: &str) {
        self.post(
            POS,
            "/api/contact",
            json!({"Code": code, "Name": name, "BirthDate": birth_date}),
        )
        .await
        .ok();
    }
}

/// Asserts the status and the bound contact as the balance answer shows them,
/// and that the block fields appear exactly while Blocked.
#[track_caller]
pub fn assert_card(view: &Value, status: &str, contact: Option<&Contact>) {
    let name = match status {
        "0" => "New",
        "1" => "Issued",
        "2" => "Active",
        "3" => "Blocked",
        other => panic!("unknown status {other}"),
    };
    assert_eq!(view["StatusCode"], json!(status), "{view}");
    assert_eq!(view["StatusName"], json!(name), "{view}");
    match contact {
        Some(c) => {
            assert_eq!(view["MobileNumber"], json!(c.mobile), "{view}");
            assert_eq!(view["Code"], json!(c.code), "{view}");
        }
        None => {
            assert_eq!(view["MobileNumber"], json!(""), "{view}");
            assert_eq!(view["Code"], json!(""), "{view}");
            assert_eq!(view["Name"], json!(""), "{view}");
        }
    }
    let obj = view.as_object().expect("an object");
    if status == "3" {
        assert!(obj.contains_key("BlockReasonCode"), "{view}");
        assert!(obj.contains_key("BlockReasonName"), "{view}");
    } else {
        assert!(!obj.contains_key("BlockReasonCode"), "{view}");
        assert!(!obj.contains_key("BlockReasonName"), "{view}");
    }
}
