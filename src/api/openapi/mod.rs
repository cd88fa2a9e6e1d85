//! The OpenAPI 3.1 description of the API (API.md §10), generated from the
//! router's routes, the operation table and the error catalogue, so that it
//! cannot drift from the code: `GET /api/openapi.json` serves it and
//! `docs/openapi.json` keeps a copy that a test compares with it.

mod operations;

use std::collections::BTreeMap;

use actix_web::http::Method as HttpMethod;
use serde_json::{json, Map, Value};

use super::catalogue::{beyond_contract, meaning, status_of};
use super::router::{Route, Router};
use crate::domain::policy::may_call;
use crate::domain::{ErrorKey, Role};
use operations::{operation, Field, Operation, Ty};

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| build(&Router::new()))
}

fn build(router: &Router) -> Value {
    let mut paths = Map::new();
    let mut seen_ids = BTreeMap::new();
    for route in router.routes() {
        let op = operation(route.id);
        let n = seen_ids.entry(op.id).or_insert(0);
        *n += 1;
        // A second path of the same method (the seed's `binto`, the
        // `/number/` form) gets an id of its own.
        let op_id = if *n == 1 {
            op.id.to_owned()
        } else {
            let last = route
                .path()
                .rsplit('/')
                .find(|s| !s.starts_with('{'))
                .unwrap_or("")
                .to_owned();
            format!("{}_{last}", op.id)
        };
        let mut item = Map::new();
        for method in route.methods {
            item.insert(
                method.as_str().to_ascii_lowercase(),
                operation_object(route, &op, &op_id, method, route.methods.len() > 1),
            );
        }
        paths.insert(route.path(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty processing API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The CashDesk Card loyalty processing API (API.md). Route paths and parameter names are matched case-insensitively (`Number` = `number` = `NUMBER`, `/api/card/Issue` = `/api/card/issue`); the names below are the canonical casing. Every answer but /metrics and this document is a JSON object that starts with `Status`, `Key`, `Value`. Every error Key the server can answer is listed in `x-error-catalogue` with its HTTP status, and per operation in `x-error-keys`. With `http.business_errors_as_200` every error except 401, 413, 429 and 5xx is sent as HTTP 200 with `Status: false`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"basic": []}],
        "paths": paths,
        "components": components(),
        "x-error-catalogue": catalogue(),
    })
}

/// Keys the dispatcher may answer on a route before or around its own
/// checks: credentials, role, body, store, engine.
fn dispatcher_keys(route: &Route, method: &HttpMethod) -> Vec<ErrorKey> {
    let Some(permission) = route.permission else {
        return vec![];
    };
    let mut keys = vec![
        ErrorKey::Unauthorized,
        ErrorKey::RateLimited,
        // A malformed query string.
        ErrorKey::InvalidParameter,
        ErrorKey::Overloaded,
        ErrorKey::StoreUnavailable,
        ErrorKey::InternalError,
    ];
    if Role::ALL.iter().any(|r| !may_call(*r, permission)) {
        keys.push(ErrorKey::Forbidden);
    }
    if method == HttpMethod::POST {
        keys.extend([ErrorKey::InvalidJson, ErrorKey::PayloadTooLarge]);
    }
    keys
}

fn operation_object(
    route: &Route,
    op: &Operation,
    op_id: &str,
    method: &HttpMethod,
    several_methods: bool,
) -> Value {
    let mut keys: Vec<ErrorKey> = op.errors.to_vec();
    keys.extend(dispatcher_keys(route, method));
    keys.sort_by_key(|k| ErrorKey::ALL.iter().position(|a| a == k));
    keys.dedup();

    let mut parameters: Vec<Value> = op.path.iter().map(|f| parameter(f, "path")).collect();
    let mut o = Map::new();
    o.insert(
        "operationId".into(),
        json!(if several_methods {
            format!("{op_id}_{}", method.as_str().to_ascii_lowercase())
        } else {
            op_id.to_owned()
        }),
    );
    o.insert("summary".into(), json!(op.summary));
    if route.permission.is_none() {
        o.insert("security".into(), json!([]));
    }
    if *method == HttpMethod::GET {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query")));
    } else if let Some(line) = op.array_body {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query")));
        o.insert("requestBody".into(), json!({
            "required": true,
            "description": "A JSON array (read whole, within the admin body limit), or NDJSON (`application/x-ndjson`: one object per line, streamed, any number of lines; blank lines are skipped; a line over bulk.max_line_bytes is rejected).",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"$ref": format!("#/components/schemas/{line}")}}},
                "application/x-ndjson": {"schema": {"$ref": format!("#/components/schemas/{line}")}},
            },
        }));
    } else if let Some(line) = op.stream_body {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query")));
        o.insert("requestBody".into(), json!({
            "required": true,
            "description": "NDJSON, one record per line, as GET /api/admin/export writes it.",
            "content": {
                "application/x-ndjson": {"schema": {"$ref": format!("#/components/schemas/{line}")}},
            },
        }));
    } else {
        o.insert("requestBody".into(), json!({
            "required": true,
            "description": "A JSON object; property names are case-insensitive, unknown ones are ignored, null and \"\" count as absent. Query parameters of the same names are read too.",
            "content": {"application/json": {"schema": object_schema(op.inputs, true)}},
        }));
    }
    o.insert("parameters".into(), Value::Array(parameters));
    o.insert("responses".into(), responses(op, &keys));
    o.insert(
        "x-error-keys".into(),
        Value::Object(
            keys.iter()
                .map(|k| (k.as_str().to_owned(), json!(status_of(*k).as_u16())))
                .collect(),
        ),
    );
    Value::Object(o)
}

fn parameter(f: &Field, place: &str) -> Value {
    let lower = f.name.to_ascii_lowercase();
    let casing = if place == "path" {
        String::new()
    } else if lower == f.name {
        format!(
            " Name matched in any case (`{}`, `{}`).",
            lower,
            f.name.to_ascii_uppercase()
        )
    } else {
        format!(" Name matched in any case (`{}`, `{lower}`).", f.name)
    };
    json!({
        "name": f.name,
        "in": place,
        "required": f.required || place == "path",
        "description": format!("{}{casing}", f.doc),
        "schema": schema(f.ty, false, true),
    })
}

fn responses(op: &Operation, keys: &[ErrorKey]) -> Value {
    let request_id = json!({"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}});
    let mut r = Map::new();
    let ok = match op.raw_answer {
        Some((mime, what)) => json!({
            "description": what,
            "headers": request_id,
            "content": {mime: {"schema": {}}},
        }),
        None => json!({
            "description": "OK (`Status: true`, `Key: \"OK\"`, `Value: \"\"`)",
            "headers": request_id,
            "content": {"application/json": {"schema": {"allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                object_schema(op.answer, false),
            ]}}},
        }),
    };
    r.insert("200".into(), ok);
    let mut by_status: BTreeMap<u16, Vec<ErrorKey>> = BTreeMap::new();
    for k in keys {
        by_status
            .entry(status_of(*k).as_u16())
            .or_default()
            .push(*k);
    }
    for (status, keys) in by_status {
        let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        let mut headers = request_id.as_object().cloned().unwrap_or_default();
        if status == 401 {
            headers.insert(
                "WWW-Authenticate".into(),
                json!({"schema": {"type": "string"}, "description": "Basic realm=\"loyalty\""}),
            );
        }
        if status == 429 || status == 503 {
            headers.insert("Retry-After".into(), json!({"schema": {"type": "integer"}, "description": "seconds (RateLimited, Overloaded)"}));
        }
        let mut schema = vec![
            json!({"$ref": "#/components/schemas/ErrorEnvelope"}),
            json!({"properties": {"Key": {"enum": names}}}),
        ];
        if !op.refusal.is_empty() && (status == 400 || status == 409) {
            // "When it has them": a refusal of the whole request (a body
            // that does not parse) carries none of these fields.
            let mut refusal = object_schema(op.refusal, false);
            if let Some(o) = refusal.as_object_mut() {
                o.remove("required");
            }
            schema.push(refusal);
        }
        r.insert(
            status.to_string(),
            json!({
                "description": names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                "headers": headers,
                "content": {"application/json": {"schema": {"allOf": schema}}},
            }),
        );
    }
    Value::Object(r)
}

fn object_schema(fields: &[Field], input: bool) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| {
            let mut s = schema(f.ty, f.nullable, input);
            if !f.doc.is_empty() {
                s["description"] = json!(f.doc);
            }
            (f.name.to_owned(), s)
        })
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn schema(ty: Ty, nullable: bool, input: bool) -> Value {
    let s = match ty {
        Ty::Str => json!({"type": "string"}),
        Ty::Code if input => json!({"type": ["string", "integer"]}),
        Ty::Code => json!({"type": "string"}),
        Ty::Money if input => {
            json!({"type": ["number", "string"], "description": "at most 2 decimals"})
        }
        Ty::Money => json!({"type": "number"}),
        Ty::Int => json!({"type": "integer", "minimum": 0}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Date => json!({"type": "string", "format": "date"}),
        Ty::Time => json!({"type": "string", "format": "date-time"}),
        Ty::Ref(name) => json!({"$ref": format!("#/components/schemas/{name}")}),
        Ty::List(name) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}})
        }
    };
    if nullable {
        json!({"oneOf": [s, {"type": "null"}]})
    } else {
        s
    }
}

fn components() -> Value {
    use operations::Ty::*;
    let f = |name, ty, doc| Field {
        name,
        ty,
        required: true,
        nullable: false,
        doc,
    };
    let n = |name, ty, doc| Field {
        name,
        ty,
        required: true,
        nullable: true,
        doc,
    };
    let every_key: Vec<&str> = ErrorKey::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        "headers": {"X-Request-Id": {
            "description": "the caller's X-Request-Id when it is 1-128 visible ASCII characters, else a new id",
            "schema": {"type": "string"},
        }},
        "schemas": {
            "Envelope": {
                "type": "object",
                "properties": {
                    "Status": {"type": "boolean", "description": "true: no error"},
                    "Key": {"type": "string", "description": "\"OK\" on success, else the error Key"},
                    "Value": {"type": "string", "description": "\"\" on success, else what went wrong"},
                },
                "required": ["Status", "Key", "Value"],
            },
            "ErrorEnvelope": {
                "allOf": [{"$ref": "#/components/schemas/Envelope"}],
                "properties": {
                    "Status": {"const": false},
                    "Key": {"enum": every_key},
                },
            },
            "BonusesInfo": object_schema(&[
                f("Amount", Money, ""),
                f("StatusCode", Code, "0 Active, 1 Inactive, 2 Burnt, 3 Frozen, 4 Nearest expiring"),
                f("StatusName", Str, ""),
                n("ExpireDate", Date, ""),
                f("TypeCode", Code, "0 Cash, 1 Status"),
                f("TypeName", Str, ""),
            ], false),
            "CardSummary": object_schema(&[
                f("Number", Str, ""),
                f("StatusCode", Code, ""),
                f("StatusName", Str, ""),
                f("CategoryCode", Code, ""),
                f("CategoryName", Str, ""),
                f("TypeCode", Code, ""),
                f("TypeName", Str, ""),
            ], false),
            "HistoryEntry": object_schema(&[
                f("Sequence", Int, ""),
                f("Time", Time, ""),
                f("Login", Str, ""),
                f("Role", Str, ""),
                f("Operation", Str, ""),
                f("FromStatusCode", Code, ""),
                f("FromStatusName", Str, ""),
                f("ToStatusCode", Code, ""),
                f("ToStatusName", Str, ""),
                n("ReasonCode", Code, ""),
                n("ReasonName", Str, ""),
                n("Detail", Str, ""),
            ], false),
            "Transaction": object_schema(&[
                f("Sequence", Int, ""),
                f("Time", Time, ""),
                f("Login", Str, ""),
                f("Role", Str, ""),
                f("Operation", Str, "purchase, cancel, refund, bonus, transfer_in, transfer_out"),
                f("Reference", Str, "PurchaseId, RefundId or OperationId"),
                f("Credited", Money, ""),
                f("Debited", Money, ""),
                n("Amount", Money, "money of a purchase, cancel or refund"),
                n("Comment", Str, ""),
            ], false),
            "CardLine": object_schema(&[
                f("Number", Code, "card number"),
                Field { required: false, ..f("CategoryCode", Code, "0 Plastic (default), 1 Virtual") },
                Field { required: false, ..f("TypeCode", Code, "0 Bonus (default), 1 Discount, 2 Bonus/Discount") },
            ], true),
            "ContactLine": object_schema(&[
                Field { required: false, ..f("Code", Code, "contact code; generated when absent") },
                Field { required: false, ..f("Name", Str, "") },
                Field { required: false, ..f("MobileNumber", Code, "required to create a contact") },
                Field { required: false, ..f("Email", Str, "") },
                Field { required: false, ..f("BirthDate", Date, "") },
                Field { required: false, ..f("Gender", Str, "") },
                Field { required: false, ..f("City", Str, "") },
                Field { required: false, ..f("CardNumber", Code, "a card to issue (if New) and bind to the contact") },
                Field { required: false, ..f("Activate", Bool, "then activate the card") },
            ], true),
            "DumpLine": {
                "type": "object",
                "description": "A record of a dump, tagged by Kind: header (Format, Version, CreatedAt), card (Card, History), record (Number, Key, Value, TtlMs), contact (Contact), index (Index, Key, Owner), end (Cards, Records, Contacts, Indexes); see docs/export.md.",
                "properties": {"Kind": {"enum": ["header", "card", "record", "contact", "index", "end"]}},
                "required": ["Kind"],
            },
            "RejectedLine": {
                "type": "object",
                "properties": {
                    "Line": {"type": "integer", "description": "1-based line (or array element) number"},
                    "Number": {"type": ["string", "null"], "description": "card loads: the line's card number"},
                    "Key": {"type": "string", "description": "the error Key the line would have answered alone"},
                    "Value": {"type": "string"},
                },
                "required": ["Line", "Key", "Value"],
            },
        },
    })
}

/// Every Key the server can answer, with its HTTP status: a till's error
/// table.
fn catalogue() -> Value {
    ErrorKey::ALL
        .iter()
        .map(|k| {
            json!({
                "Key": k.as_str(),
                "status": status_of(*k).as_u16(),
                "meaning": meaning(*k),
                "beyondContract": beyond_contract(*k),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = include_str!("../../../docs/openapi.json");

    #[test]
    fn the_documents_paths_are_the_routers_routes() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (path.clone(), m.to_ascii_uppercase()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = Router::new()
            .routes()
            .iter()
            .flat_map(|r| r.methods.iter().map(move |m| (r.path(), m.to_string())))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_key_of_the_catalogue_is_in_the_document() {
        let text = document().to_string();
        let listed: Vec<&Value> = document()["x-error-catalogue"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(listed.len(), ErrorKey::ALL.len());
        for key in ErrorKey::ALL {
            assert!(
                listed
                    .iter()
                    .any(|e| e["Key"] == key.as_str() && e["status"] == status_of(key).as_u16()),
                "{key}"
            );
            // Answered by some operation, or by the HTTP layer itself.
            let transport = matches!(
                key,
                ErrorKey::NotFound
                    | ErrorKey::MethodNotAllowed
                    | ErrorKey::MalformedRequest
                    | ErrorKey::HeadersTooLarge
                    | ErrorKey::RequestTimeout
            );
            assert!(
                transport
                    || text.contains(&format!("\"{}\":{}", key.as_str(), status_of(key).as_u16())),
                "{key} is in no operation's x-error-keys"
            );
        }
    }

    /// `docs/openapi.json` is this document. Regenerate it with
    /// `LOYALTY_WRITE_OPENAPI=1 cargo test --lib openapi`.
    #[test]
    fn docs_openapi_json_is_the_served_document() {
        let current = serde_json::to_string_pretty(document()).unwrap() + "\n";
        if std::env::var_os("LOYALTY_WRITE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
            std::fs::write(path, &current).unwrap();
            return;
        }
        assert!(
            COMMITTED == current,
            "docs/openapi.json is stale: run LOYALTY_WRITE_OPENAPI=1 cargo test --lib openapi"
        );
    }
}
