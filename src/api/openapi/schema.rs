//! JSON Schemas of fields and the document's components. Inputs carry the
//! rules the server enforces, each with the Key that a value breaking them
//! answers (`x-invalid-key`); outputs are plain types, so that a code or a
//! Key added later does not make older generated clients refuse an answer.

use serde_json::{json, Map, Value};

use super::operations::{Answer, Field, Refusal, Ty, CARD_TYPES, CATEGORIES};
use crate::domain::contact::MAX_TEXT_LEN;
use crate::domain::{Amount, ErrorKey};

/// What the rules of the document depend on in the configuration.
pub struct Rules {
    /// The card-number pattern as the server anchors it.
    pub card_pattern: String,
}

/// After stripping spaces, `-`, `(`, `)` and one leading `+`: 10–15 digits.
pub const MOBILE_PATTERN: &str = r"^ *\+?[-() ]*(?:[0-9][-() ]*){10,15}$";
pub const MOBILE_MAX_LEN: u64 = 64;
pub const CODE_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// Visible ASCII (`!` to `~`).
pub const ID_PATTERN: &str = "^[!-~]+$";
pub const ID_MAX_LEN: u64 = 128;
/// No control characters (Unicode Cc).
pub const TEXT_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
pub const CURSOR_PATTERN: &str = "^[0-9]{1,19}$";
pub const DATE_OR_EMPTY_PATTERN: &str = "^(?:[0-9]{4}-[0-9]{2}-[0-9]{2})?$";

impl Rules {
    pub fn card_or_code_pattern(&self) -> String {
        let card = self
            .card_pattern
            .trim_start_matches('^')
            .trim_end_matches('$');
        format!("^(?:{card}|[A-Za-z0-9_-]{{1,64}})$")
    }
}

fn with_key(mut s: Value, key: ErrorKey) -> Value {
    s["x-invalid-key"] = json!(key.as_str());
    s
}

/// The schema of an input field (a query or path parameter, a body
/// property).
pub fn input(ty: Ty, rules: &Rules) -> Value {
    let max_amount = Amount::MAX.hundredths() / 100;
    match ty {
        Ty::Text => with_key(
            json!({"type": "string", "maxLength": MAX_TEXT_LEN, "pattern": TEXT_PATTERN}),
            ErrorKey::InvalidParameter,
        ),
        Ty::Note | Ty::Str => json!({"type": "string"}),
        Ty::CardNumber => with_key(
            json!({"type": "string", "pattern": rules.card_pattern}),
            ErrorKey::InvalidCardNumber,
        ),
        Ty::CardNumberOrCode => with_key(
            json!({"type": "string", "pattern": rules.card_or_code_pattern()}),
            ErrorKey::InvalidCardNumber,
        ),
        Ty::Mobile => with_key(
            json!({"type": "string", "maxLength": MOBILE_MAX_LEN, "pattern": MOBILE_PATTERN}),
            ErrorKey::InvalidMobileNumber,
        ),
        Ty::ContactCode => with_key(
            json!({"type": "string", "maxLength": 64, "pattern": CODE_PATTERN}),
            ErrorKey::InvalidContactCode,
        ),
        Ty::Id => with_key(
            json!({"type": "string", "minLength": 1, "maxLength": ID_MAX_LEN, "pattern": ID_PATTERN}),
            ErrorKey::InvalidParameter,
        ),
        Ty::Code(values, key) => with_key(json!({"type": "string", "enum": values}), key),
        Ty::Amount { positive } => {
            let mut s = json!({"type": "number", "maximum": max_amount, "multipleOf": 0.01});
            if positive {
                s["exclusiveMinimum"] = json!(0);
            } else {
                s["minimum"] = json!(0);
            }
            with_key(s, ErrorKey::InvalidAmount)
        }
        Ty::Int => with_key(
            json!({"type": "integer", "minimum": 0}),
            ErrorKey::InvalidParameter,
        ),
        Ty::PositiveInt => with_key(
            json!({"type": "integer", "minimum": 1}),
            ErrorKey::InvalidParameter,
        ),
        Ty::Bool => with_key(json!({"type": "boolean"}), ErrorKey::InvalidParameter),
        Ty::Date => with_key(
            json!({"type": "string", "format": "date"}),
            ErrorKey::InvalidParameter,
        ),
        Ty::DateOrEmpty => with_key(
            json!({"type": "string", "pattern": DATE_OR_EMPTY_PATTERN}),
            ErrorKey::InvalidParameter,
        ),
        Ty::Cursor => with_key(
            json!({"type": "string", "pattern": CURSOR_PATTERN}),
            ErrorKey::InvalidParameter,
        ),
        Ty::Money | Ty::Time | Ty::Ref(_) | Ty::List(_) => output(ty),
    }
}

/// The schema of an answer's field.
pub fn output(ty: Ty) -> Value {
    match ty {
        Ty::Money => json!({"type": "number", "minimum": 0}),
        Ty::Int => json!({"type": "integer", "minimum": 0}),
        Ty::PositiveInt => json!({"type": "integer", "minimum": 1}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Date => json!({"type": "string", "format": "date"}),
        Ty::Time => json!({"type": "string", "format": "date-time"}),
        Ty::Cursor => json!({"type": "string", "pattern": CURSOR_PATTERN}),
        Ty::Ref(name) => json!({"$ref": format!("#/components/schemas/{name}")}),
        Ty::List(name) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}})
        }
        _ => json!({"type": "string"}),
    }
}

fn field_schema(f: &Field, input_rules: Option<&Rules>) -> Value {
    let mut s = match input_rules {
        Some(rules) => input(f.ty, rules),
        None => output(f.ty),
    };
    if f.nullable {
        s = if let Some(t) = s.get("type").and_then(Value::as_str) {
            let mut s = s.clone();
            s["type"] = json!([t, "null"]);
            s
        } else {
            json!({"oneOf": [s, {"type": "null"}]})
        };
    }
    if !f.doc.is_empty() {
        s["description"] = json!(f.doc);
    }
    s
}

/// An object of `fields`; inputs with their rules.
pub fn object(fields: &[Field], input_rules: Option<&Rules>) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_owned(), field_schema(f, input_rules)))
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut o = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// A request body's example: the fields that have one.
pub fn example(fields: &[Field]) -> Value {
    fields
        .iter()
        .filter_map(|f| {
            let v = serde_json::from_str(f.example?).expect("examples are JSON");
            Some((f.name.to_owned(), v))
        })
        .collect::<Map<String, Value>>()
        .into()
}

/// A success answer: `Status: true`, `Key: "OK"`, `Value: ""`, then the
/// fields. The constants tell it from the error envelope when both come as
/// HTTP 200 (errors-as-200 mode).
pub fn answer(a: &Answer) -> Value {
    let mut o = object(a.fields, None);
    let mut properties = Map::new();
    properties.insert(
        "Status".into(),
        json!({"type": "boolean", "const": true, "description": "true: no error"}),
    );
    properties.insert("Key".into(), json!({"type": "string", "const": "OK"}));
    properties.insert("Value".into(), json!({"type": "string", "const": ""}));
    if let Some(fields) = o["properties"].as_object() {
        properties.extend(fields.clone());
    }
    let mut required = vec![json!("Status"), json!("Key"), json!("Value")];
    if let Some(r) = o["required"].as_array() {
        required.extend(r.iter().cloned());
    }
    o["properties"] = Value::Object(properties);
    o["required"] = Value::Array(required);
    o["description"] = json!(format!("{} answer", a.name));
    o
}

/// A refusal with fields beyond the envelope: the error envelope and
/// those fields, each optional.
pub fn refusal(r: &Refusal) -> Value {
    let mut fields = object(r.fields, None);
    if let Some(o) = fields.as_object_mut() {
        o.remove("required");
    }
    json!({
        "description": "the error envelope, with these fields when the refusal has them",
        "allOf": [{"$ref": "#/components/schemas/ErrorEnvelope"}, fields],
    })
}

/// The one error type of the API.
pub fn error_envelope() -> Value {
    json!({
        "type": "object",
        "description": "Every error answer. `Key` names the error: each response lists the Keys it may carry (`x-error-keys`, and in its description), and `x-error-catalogue` every Key with its meaning. A client must accept a Key it does not know (a newer server may add one): `Key` is a string, not an enum.",
        "properties": {
            "Status": {"type": "boolean", "const": false, "description": "false: an error"},
            "Key": {"type": "string", "description": "the error Key (never \"OK\")", "examples": ["StatusError"]},
            "Value": {"type": "string", "description": "what went wrong, for a person"},
        },
        "required": ["Status", "Key", "Value"],
    })
}

/// The component schemas that are not an operation's answer or refusal.
pub fn shared(rules: &Rules) -> Map<String, Value> {
    use super::operations::Ty::*;
    let f = |name, ty, doc| Field {
        name,
        ty,
        required: true,
        nullable: false,
        doc,
        example: None,
    };
    let o = |field: Field| Field {
        required: false,
        ..field
    };
    let n = |field: Field| Field {
        nullable: true,
        ..field
    };
    let mut m = Map::new();
    m.insert("ErrorEnvelope".into(), error_envelope());
    m.insert(
        "BonusesInfo".into(),
        object(
            &[
                f("Amount", Money, ""),
                f("StatusCode", Str, "0 Active, 1 Inactive, 2 Burnt, 3 Frozen, 4 Nearest expiring, 5 Held (reserved by an open hold) (a client must accept codes it does not know: more may come)"),
                f("StatusName", Str, ""),
                n(f("ExpireDate", Date, "")),
                f("TypeCode", Str, "0 Cash, 1 Status"),
                f("TypeName", Str, ""),
            ],
            None,
        ),
    );
    m.insert(
        "CardSummary".into(),
        object(
            &[
                f("Number", Str, ""),
                f("StatusCode", Str, "0 New, 1 Issued, 2 Active, 3 Blocked"),
                f("StatusName", Str, ""),
                f("CategoryCode", Str, "0 Plastic, 1 Virtual"),
                f("CategoryName", Str, ""),
                f("TypeCode", Str, "0 Bonus, 1 Discount, 2 Bonus/Discount"),
                f("TypeName", Str, ""),
            ],
            None,
        ),
    );
    m.insert(
        "HistoryEntry".into(),
        object(
            &[
                f("Sequence", Int, ""),
                f("Time", Time, ""),
                f("Login", Str, ""),
                f("Role", Str, ""),
                f("Operation", Str, ""),
                f("FromStatusCode", Str, ""),
                f("FromStatusName", Str, ""),
                f("ToStatusCode", Str, ""),
                f("ToStatusName", Str, ""),
                n(f("ReasonCode", Str, "")),
                n(f("ReasonName", Str, "")),
                n(f("Detail", Str, "")),
            ],
            None,
        ),
    );
    m.insert(
        "Transaction".into(),
        object(
            &[
                f("Sequence", Int, ""),
                f("Time", Time, ""),
                o(f("Login", Str, "audit field: not shown to pos and client")),
                o(f("Role", Str, "audit field: not shown to pos and client")),
                f(
                    "Operation",
                    Str,
                    "purchase, cancel, refund, bonus, transfer_in, transfer_out, hold (moves nothing: its bonuses are Held until confirmed), release",
                ),
                f("Reference", Str, "PurchaseId, RefundId or OperationId"),
                f("Credited", Money, ""),
                f("Debited", Money, ""),
                n(f("Amount", Money, "money of a purchase, cancel or refund")),
                o(n(f(
                    "Comment",
                    Str,
                    "audit field: not shown to pos and client",
                ))),
                o(f(
                    "Debt",
                    Money,
                    "only on an operation that changed the card's debt: the debt after it (on transfer_out, the debt moved to the new card; on transfer_in, whenever a debt came in, what is left of it)",
                )),
            ],
            None,
        ),
    );
    let codes = |values, doc| o(f("", Code(values, ErrorKey::InvalidParameter), doc));
    m.insert(
        "CardLine".into(),
        object(
            &[
                f("Number", CardNumber, "card number"),
                Field {
                    name: "CategoryCode",
                    ..codes(CATEGORIES, "0 Plastic (default), 1 Virtual")
                },
                Field {
                    name: "TypeCode",
                    ..codes(
                        CARD_TYPES,
                        "0 Bonus (default), 1 Discount, 2 Bonus/Discount",
                    )
                },
            ],
            Some(rules),
        ),
    );
    m.insert(
        "ContactLine".into(),
        object(
            &[
                o(f(
                    "Code",
                    ContactCode,
                    "contact code; generated when absent",
                )),
                o(f("Name", Text, "")),
                o(f("MobileNumber", Mobile, "required to create a contact")),
                o(f("Email", Text, "")),
                o(f("BirthDate", DateOrEmpty, "")),
                o(f("Gender", Text, "")),
                o(f("City", Text, "")),
                o(f(
                    "CardNumber",
                    CardNumber,
                    "a card to issue (if New) and bind to the contact",
                )),
                o(f("Activate", Bool, "then activate the card")),
            ],
            Some(rules),
        ),
    );
    m.insert("DumpLine".into(), json!({
        "type": "object",
        "description": "A record of a dump, tagged by Kind: header (Format, Version, CreatedAt), card (Card, History), record (Number, Key, Value, TtlMs), contact (Contact), index (Index, Key, Owner), end (Cards, Records, Contacts, Indexes); see docs/export.md.",
        "properties": {"Kind": {"type": "string", "enum": ["header", "card", "record", "contact", "index", "end", "error"]}},
        "required": ["Kind"],
    }));
    m.insert("RejectedLine".into(), json!({
        "type": "object",
        "properties": {
            "Line": {"type": "integer", "description": "1-based line (or array element) number"},
            "Number": {"type": ["string", "null"], "description": "card loads: the line's card number"},
            "Key": {"type": "string", "description": "the error Key the line would have answered alone"},
            "Value": {"type": "string"},
        },
        "required": ["Line", "Key", "Value"],
    }));
    m
}
