//! JSON shapes of the answers (field names as the contract spells them).

use serde_json::{json, Map, Value};

use time::{Date, OffsetDateTime};

use crate::domain::{Amount, Bucket, Card, CardStatus, Contact, HistoryEntry};
use crate::engine::BalanceView;

pub type Fields = Map<String, Value>;

/// The balance answer of docs/api.md §5.1.
pub fn balance(view: &BalanceView, now: OffsetDateTime) -> Fields {
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
    // A replaced card's bonuses moved to its successor: it shows none.
    let bonuses = if card.replaced_by.is_some() {
        Vec::new()
    } else {
        let frozen = card.status == CardStatus::Blocked;
        card.buckets(now, frozen).iter().map(bucket).collect()
    };
    f.insert("Bonuses".into(), Value::Array(bonuses));
    // Not a bonus status of the contract's: what the customer owes is no
    // bonus, so it is a field of its own, there only while owed.
    if card.ledger.debt > Amount::ZERO {
        f.insert("Debt".into(), money(card.ledger.debt));
    }
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

/// An exact amount as a JSON number with at most two decimals.
pub fn money(a: Amount) -> Value {
    // Hundredths below 2^53 print exactly as the shortest decimal.
    serde_json::Number::from_f64(a.hundredths() as f64 / 100.0).map_or(Value::Null, Value::Number)
}

pub fn percent(basis_points: i64) -> Value {
    money(Amount::from_hundredths(basis_points).unwrap_or(Amount::ZERO))
}

pub fn date(d: Date) -> Value {
    Value::String(d.to_string())
}

/// A moment as RFC 3339 text in UTC (a hold's `HeldUntil`).
pub fn timestamp(at: OffsetDateTime) -> Value {
    Value::String(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    )
}

fn bucket(b: &Bucket) -> Value {
    json!({
        "Amount": money(b.amount),
        "StatusCode": b.status.code_str(),
        "StatusName": b.status.name(),
        "ExpireDate": b.expire_date.map_or(Value::Null, date),
        "TypeCode": b.bonus_type.code_str(),
        "TypeName": b.bonus_type.name(),
    })
}

pub fn transaction(seq: u64, e: &HistoryEntry) -> Value {
    let time =
        e.at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
    let b = e.bonus.clone().unwrap_or_default();
    let mut item = json!({
        "Sequence": seq,
        "Time": time,
        "Login": e.login,
        "Role": e.role.as_str(),
        "Operation": e.operation.as_str(),
        "Reference": b.reference,
        "Credited": money(b.credited),
        "Debited": money(b.debited),
        "Amount": b.money.map_or(Value::Null, money),
        "Comment": b.comment,
    });
    if let (Some(debt), Value::Object(fields)) = (b.debt, &mut item) {
        fields.insert("Debt".into(), money(debt));
    }
    item
}

/// A transaction as pos and client see it: without the audit fields that
/// the card's history keeps from them (who did it, and the marketer's
/// comment).
pub fn transaction_without_audit(seq: u64, e: &HistoryEntry) -> Value {
    let mut v = transaction(seq, e);
    if let Value::Object(fields) = &mut v {
        for audit in ["Login", "Role", "Comment"] {
            fields.remove(audit);
        }
    }
    v
}

/// A page of history entries: `Items` rendered by `item`, and the cursor of
/// the next (older) page, `null` on the last.
pub fn page(page: &crate::engine::HistoryPage, item: fn(u64, &HistoryEntry) -> Value) -> Fields {
    let mut f = Fields::new();
    f.insert(
        "Items".into(),
        page.entries.iter().map(|(seq, e)| item(*seq, e)).collect(),
    );
    f.insert(
        "NextCursor".into(),
        page.next.map_or(Value::Null, |n| n.to_string().into()),
    );
    // Only when it is so: older entries were moved to the archive and this
    // server cannot read it.
    if page.older_archived {
        f.insert("OlderEntriesArchived".into(), Value::Bool(true));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(next: Option<u64>, archived_below: u64) -> Fields {
        let page: crate::engine::HistoryPage = crate::store::HistoryPage {
            entries: Vec::new(),
            next,
            archived_below,
        }
        .into();
        super::page(&page, |_, _| Value::Null)
    }

    #[test]
    fn the_last_readable_page_says_when_older_entries_are_only_archived() {
        assert_eq!(
            page_of(None, 210).get("OlderEntriesArchived"),
            Some(&Value::Bool(true))
        );
        // Not on a page with more to come, nor when nothing was archived.
        assert_eq!(page_of(Some(300), 210).get("OlderEntriesArchived"), None);
        assert_eq!(page_of(None, 0).get("OlderEntriesArchived"), None);
    }
}
