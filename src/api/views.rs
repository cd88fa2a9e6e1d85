//! JSON shapes of the answers (field names as the contract spells them).

use serde_json::{json, Map, Value};

use crate::domain::{Card, Contact, HistoryEntry};
use crate::engine::BalanceView;

pub type Fields = Map<String, Value>;

/// The balance answer of API.md §5.1.
pub fn balance(view: &BalanceView) -> Fields {
    let card = &view.card;
    let contact = view.contact.as_ref();
    let mut f = Fields::new();
    f.insert("Number".into(), json!(card.number.as_str()));
    f.insert(
        "MobileNumber".into(),
        json!(contact
            .and_then(|c| c.mobile.as_ref())
            .map_or("", |m| m.as_str())),
    );
    f.insert(
        "Code".into(),
        json!(contact.map_or("", |c| c.code.as_str())),
    );
    f.insert(
        "Name".into(),
        json!(contact.map_or("", |c| c.name.as_str())),
    );
    f.insert("StatusCode".into(), json!(card.status.code_str()));
    f.insert("StatusName".into(), json!(card.status.name()));
    f.insert("CategoryCode".into(), json!(card.category.code_str()));
    f.insert("CategoryName".into(), json!(card.category.name()));
    f.insert("TypeCode".into(), json!(card.card_type.code_str()));
    f.insert("TypeName".into(), json!(card.card_type.name()));
    // No ledger yet: a card holds no bonuses until accruals exist.
    f.insert("Bonuses".into(), Value::Array(Vec::new()));
    if let Some(block) = &card.block {
        f.insert("BlockReasonCode".into(), json!(block.reason.code_str()));
        f.insert("BlockReasonName".into(), json!(block.reason.name()));
    }
    if let Some(by) = &card.replaced_by {
        f.insert("ReplacedBy".into(), json!(by.as_str()));
    }
    f
}

pub fn card_summary(card: &Card) -> Value {
    json!({
        "Number": card.number.as_str(),
        "StatusCode": card.status.code_str(),
        "StatusName": card.status.name(),
        "CategoryCode": card.category.code_str(),
        "CategoryName": card.category.name(),
        "TypeCode": card.card_type.code_str(),
        "TypeName": card.card_type.name(),
    })
}

pub fn contact(contact: &Contact, card: Option<&Card>) -> Fields {
    let mut f = Fields::new();
    f.insert("Code".into(), json!(contact.code.as_str()));
    f.insert("Name".into(), json!(contact.name));
    f.insert(
        "MobileNumber".into(),
        json!(contact.mobile.as_ref().map_or("", |m| m.as_str())),
    );
    f.insert("Email".into(), json!(contact.email));
    f.insert("BirthDate".into(), json!(contact.birth_date));
    f.insert("Gender".into(), json!(contact.gender));
    f.insert("City".into(), json!(contact.city));
    f.insert("Card".into(), card.map_or(Value::Null, card_summary));
    f
}

pub fn history_entry(seq: u64, e: &HistoryEntry) -> Value {
    let time =
        e.at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
    json!({
        "Sequence": seq,
        "Time": time,
        "Login": e.login,
        "Role": e.role.as_str(),
        "Operation": e.operation.as_str(),
        "FromStatusCode": e.from.code_str(),
        "FromStatusName": e.from.name(),
        "ToStatusCode": e.to.code_str(),
        "ToStatusName": e.to.name(),
        "ReasonCode": e.reason_code.map(|c| c.to_string()),
        "ReasonName": e.reason_name,
        "Detail": e.detail,
    })
}
