//! The OpenAPI 3.1 description of the API (docs/api.md §10), generated from the
//! router's routes, the operation table and the error catalogue, so that it
//! cannot drift from the code. `GET /api/openapi.json` serves the document
//! of the server's own configuration: its card-number pattern, and with
//! `http.business_errors_as_200` (errors-as-200 mode) every business refusal
//! described as the HTTP 200 it is sent as. `docs/openapi.json` and
//! `docs/openapi-errors-as-200.json` keep the two documents of the default
//! configuration; a test compares them with what the server serves.

mod operations;
mod responses;
mod schema;

use std::collections::BTreeMap;

use actix_web::http::Method as HttpMethod;
use serde_json::{json, Map, Value};

use super::catalogue::{beyond_contract, meaning, status_of};
use super::router::Router;
use super::routes::Route;
use crate::config::Settings;
use crate::domain::policy::may_call;
use crate::domain::{CardNumberFormat, ErrorKey, Role};
use operations::{operation, Field, Operation};
use responses::{header_components, responses, wire_status};
pub use schema::Rules;

/// The document `settings` serve, as JSON text.
pub fn document_text(router: &Router, settings: &Settings) -> String {
    let rules = Rules {
        card_pattern: CardNumberFormat::anchored_pattern(&settings.card.number_pattern),
    };
    build(router, &rules, settings.http.business_errors_as_200).to_string()
}

/// The document of the default configuration, in normal or errors-as-200 mode.
pub fn default_document(errors_as_200: bool) -> Value {
    let mut settings = Settings::defaults();
    settings.http.business_errors_as_200 = errors_as_200;
    serde_json::from_str(&document_text(&Router::new(), &settings)).expect("the document is JSON")
}

/// Where a route's operations are grouped (generated clients make a
/// module of each).
fn tag(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/api/card/") {
        "card"
    } else if lower.starts_with("/api/purchase/") {
        "purchase"
    } else if lower.starts_with("/api/contact") {
        "contact"
    } else if lower.starts_with("/api/admin/") {
        "admin"
    } else {
        "ops"
    }
}

const INFO: &str = "The CashDesk Card loyalty processing API (docs/api.md).\n\n\
Route paths and parameter names are matched case-insensitively (`Number` = `number` = `NUMBER`, `/api/card/Issue` = `/api/card/issue`); the names below are the canonical casing. \
Every answer but /metrics, the export's NDJSON and this document is a JSON object that starts with `Status`, `Key`, `Value`: a success is `Status: true, Key: \"OK\", Value: \"\"` and the method's fields; every error is the one `ErrorEnvelope` (`Status: false`, its `Key`, a `Value` for a person), a few with extra fields (`CalculationRefusal`, `BulkRefusal`). \
Each response lists the Keys it may carry in `x-error-keys` (and each operation maps them to their HTTP status in its own `x-error-keys`); `x-error-catalogue` lists every Key with its status and meaning. A client must accept Keys and reference codes it does not know.\n\n\
Rules are machine-readable: each input's schema carries the pattern, length, range, `multipleOf` or `enum` the server enforces, and `x-invalid-key`, the Key a value breaking them answers. \
A required parameter that is missing, `null`, `\"\"` or blank answers `RequiredParameterNotSpecified` (all missing ones named at once); an optional one so given counts as absent. \
Beyond the canonical types shown, the server also reads a reference code or a card or mobile number sent as a JSON integer, and an amount sent as its text (docs/api.md §1), for tills of the seed; a value of another JSON type answers `InvalidJson`. \
Cursors are strings both ways: `NextCursor` is passed back as `cursor` as it came.\n\n\
NDJSON (`application/x-ndjson`): the bulk loads take it besides a JSON array, the import takes only it, and the export answers it. Generators that do not read that media type keep the JSON form and skip the rest; call those with the generated client's HTTP client (docs/openapi.md).\n\n\
Lint notes (Redocly's recommended rules): `info-license` — the API has no public license to name.";

fn build(router: &Router, rules: &Rules, errors_as_200: bool) -> Value {
    let mut paths = Map::new();
    let mut seen_ids = BTreeMap::new();
    let mut schemas = schema::shared(rules);
    for route in router.routes() {
        let op = operation(route.id);
        schemas.insert(op.answer.name.into(), schema::answer(&op.answer));
        if let Some(r) = &op.refusal {
            schemas.insert(r.name.into(), schema::refusal(r));
        }
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
            let several = route.methods.len() > 1;
            item.insert(
                method.as_str().to_ascii_lowercase(),
                operation_object(route, &op, &op_id, method, several, rules, errors_as_200),
            );
        }
        paths.insert(route.path(), Value::Object(item));
    }
    let mode = if errors_as_200 {
        "\n\nThis server runs in errors-as-200 mode (`http.business_errors_as_200`): every business refusal is sent as HTTP 200 with `Status: false` — each 200 below is `oneOf` the answer and the error envelope, told apart by `Status` (true/false) and by `Key` (`\"OK\"` only on success). Only 401, 413, 429, 5xx and the HTTP layer's own refusals (400 `MalformedRequest`, 408 `RequestTimeout`, 431) keep their status.\n\nLint notes, errors-as-200 mode: `operation-4xx-response` on /health, /ready, /metrics and this document — their only refusals (NotFound, MethodNotAllowed) are sent as 200 here."
    } else {
        "\n\nWith `http.business_errors_as_200` (errors-as-200 mode) a server sends every business refusal as HTTP 200 with `Status: false`, and its own GET /api/openapi.json says so (docs/openapi-errors-as-200.json)."
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty processing API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("{INFO}{mode}"),
        },
        "servers": [{"url": "/", "description": "the server this document was read from"}],
        "security": [{"basic": []}],
        "tags": [
            {"name": "card", "description": "The card service (docs/api.md §5), history and transactions"},
            {"name": "purchase", "description": "Purchases: calculate, confirm, cancel, refund (docs/api.md §7)"},
            {"name": "contact", "description": "Contacts (docs/api.md §8)"},
            {"name": "admin", "description": "Data loading, export and import (docs/api.md §8)"},
            {"name": "ops", "description": "Health, readiness, metrics and this document (docs/api.md §10)"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "headers": header_components(),
            "schemas": schemas,
        },
        "x-error-catalogue": catalogue(errors_as_200),
    })
}

/// Keys the dispatcher may answer on a route before or around its own
/// checks: routing, credentials, role, body, store, engine.
fn dispatcher_keys(route: &Route, method: &HttpMethod) -> Vec<ErrorKey> {
    let mut keys = vec![ErrorKey::NotFound, ErrorKey::MethodNotAllowed];
    let Some(permission) = route.permission() else {
        return keys;
    };
    keys.extend([
        ErrorKey::Unauthorized,
        ErrorKey::RateLimited,
        // A malformed query string.
        ErrorKey::InvalidParameter,
        ErrorKey::Overloaded,
        ErrorKey::StoreUnavailable,
        ErrorKey::InternalError,
    ]);
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
    rules: &Rules,
    errors_as_200: bool,
) -> Value {
    let mut keys: Vec<ErrorKey> = op.errors.to_vec();
    keys.extend(dispatcher_keys(route, method));
    keys.sort_by_key(|k| ErrorKey::ALL.iter().position(|a| a == k));
    keys.dedup();

    let mut parameters: Vec<Value> = op
        .path
        .iter()
        .map(|f| parameter(f, "path", rules))
        .collect();
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
    o.insert("tags".into(), json!([tag(&route.path())]));
    if route.permission().is_none() {
        o.insert("security".into(), json!([]));
    }
    if *method == HttpMethod::GET {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query", rules)));
    } else if let Some(line) = op.array_body {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query", rules)));
        o.insert("requestBody".into(), json!({
            "required": true,
            "description": "A JSON array (read whole, within the admin body limit), or NDJSON (`application/x-ndjson`: one object per line, streamed, any number of lines; blank lines are skipped; a line over bulk.max_line_bytes is rejected).",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": format!("#/components/schemas/{line}")}},
                    "example": [line_example(line)],
                },
                "application/x-ndjson": {
                    "schema": ndjson(line),
                    "example": format!("{}\n", line_example(line)),
                },
            },
        }));
    } else if let Some(line) = op.stream_body {
        parameters.extend(op.inputs.iter().map(|f| parameter(f, "query", rules)));
        o.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "description": "NDJSON, one record per line, as GET /api/admin/export writes it.",
                "content": {
                    "application/x-ndjson": {
                        "schema": ndjson(line),
                        "example": format!("{}\n", line_example(line)),
                    },
                },
            }),
        );
    } else {
        o.insert("requestBody".into(), json!({
            "required": true,
            "description": "A JSON object; property names are case-insensitive, unknown ones are ignored, null and \"\" count as absent. Query parameters of the same names are read too.",
            "content": {"application/json": {
                "schema": schema::object(op.inputs, Some(rules)),
                "example": schema::example(op.inputs),
            }},
        }));
    }
    o.insert("parameters".into(), Value::Array(parameters));
    o.insert("responses".into(), responses(op, &keys, errors_as_200));
    o.insert(
        "x-error-keys".into(),
        Value::Object(
            keys.iter()
                .map(|k| (k.as_str().to_owned(), json!(wire_status(*k, errors_as_200))))
                .collect(),
        ),
    );
    Value::Object(o)
}

fn ndjson(line: &str) -> Value {
    json!({
        "type": "string",
        "contentMediaType": "application/x-ndjson",
        "contentSchema": {"$ref": format!("#/components/schemas/{line}")},
        "description": format!("one {line} JSON object per line"),
    })
}

/// One line of a bulk body or a dump, for the examples.
fn line_example(line: &str) -> Value {
    match line {
        "CardLine" => json!({"Number": "7000000000101", "CategoryCode": "0", "TypeCode": "0"}),
        "ContactLine" => {
            json!({"Code": "DEMO-9", "Name": "Pavel Orlov", "MobileNumber": "+7 (905) 111-22-33", "CardNumber": "7000000000101", "Activate": false})
        }
        _ => json!({"Kind": "header", "Format": "loyalty-dump", "Version": 2}),
    }
}

fn parameter(f: &Field, place: &str, rules: &Rules) -> Value {
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
        "schema": schema::input(f.ty, rules),
    })
}

/// Every Key the server can answer, with its HTTP status (and the one it
/// goes out with in this document's mode): a till's error table.
fn catalogue(errors_as_200: bool) -> Value {
    ErrorKey::ALL
        .iter()
        .map(|k| {
            let mut e = json!({
                "Key": k.as_str(),
                "status": status_of(*k).as_u16(),
                "meaning": meaning(*k),
                "beyondContract": beyond_contract(*k),
            });
            if errors_as_200 {
                e["wireStatus"] = json!(wire_status(*k, true));
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = include_str!("../../../docs/openapi.json");
    const COMMITTED_ERRORS_AS_200: &str = include_str!("../../../docs/openapi-errors-as-200.json");

    #[test]
    fn the_documents_paths_are_the_routers_routes() {
        for errors_as_200 in [false, true] {
            let doc = default_document(errors_as_200);
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
    }

    #[test]
    fn every_key_of_the_catalogue_is_in_the_document() {
        let doc = default_document(false);
        let text = doc.to_string();
        let listed: Vec<&Value> = doc["x-error-catalogue"]
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
                ErrorKey::MalformedRequest | ErrorKey::HeadersTooLarge | ErrorKey::RequestTimeout
            );
            assert!(
                transport
                    || text.contains(&format!("\"{}\":{}", key.as_str(), status_of(key).as_u16())),
                "{key} is in no operation's x-error-keys"
            );
        }
    }

    /// Every response of every operation: one error type, the Keys listed,
    /// 404 and 405 everywhere, `Allow` on the 405.
    #[test]
    fn every_error_response_is_the_one_envelope_with_its_keys() {
        let doc = default_document(false);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for status in ["404", "405"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
                assert!(
                    responses["405"]["headers"].get("Allow").is_some(),
                    "{method} {path}: 405 without Allow"
                );
                for (status, r) in responses {
                    if status == "200" {
                        continue;
                    }
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    let name = schema.as_str().unwrap_or_default();
                    let schemas = &doc["components"]["schemas"];
                    let target = &schemas[name.rsplit('/').next().unwrap()];
                    assert!(
                        name.ends_with("/ErrorEnvelope")
                            || target["allOf"][0]["$ref"] == "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}: {schema}"
                    );
                    let keys = r["x-error-keys"].as_array().unwrap();
                    assert!(!keys.is_empty());
                    for k in keys {
                        assert_eq!(
                            op["x-error-keys"][k.as_str().unwrap()].to_string(),
                            *status,
                            "{method} {path}"
                        );
                        assert!(r["description"]
                            .as_str()
                            .unwrap()
                            .contains(k.as_str().unwrap()));
                    }
                }
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["ErrorEnvelope"]["properties"]["Key"]["type"],
            "string"
        );
        assert!(
            doc["components"]["schemas"]["ErrorEnvelope"]["properties"]["Key"]
                .get("enum")
                .is_none()
        );
    }

    /// Errors-as-200 mode: business refusals are 200s, `oneOf` the answer and the
    /// envelope; only 401, 413, 429 and 5xx keep a status of their own.
    #[test]
    fn the_errors_as_200_document_sends_business_errors_as_200() {
        let doc = default_document(true);
        let confirm = &doc["paths"]["/api/purchase/confirm"]["post"];
        let statuses: BTreeSet<&str> = confirm["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            statuses,
            BTreeSet::from(["200", "401", "413", "429", "500", "503"])
        );
        let ok = &confirm["responses"]["200"];
        assert_eq!(
            ok["content"]["application/json"]["schema"]["oneOf"],
            json!([
                {"$ref": "#/components/schemas/Confirmation"},
                {"$ref": "#/components/schemas/ErrorEnvelope"}
            ])
        );
        assert!(ok["x-error-keys"]
            .as_array()
            .unwrap()
            .contains(&json!("IdempotencyConflict")));
        assert_eq!(confirm["x-error-keys"]["IdempotencyConflict"], 200);
        assert_eq!(confirm["x-error-keys"]["Unauthorized"], 401);
        let calculate = &doc["paths"]["/api/purchase/calculate"]["post"]["responses"]["200"];
        assert_eq!(
            calculate["content"]["application/json"]["schema"]["oneOf"][1]["$ref"],
            "#/components/schemas/CalculationRefusal"
        );
        let answer = &doc["components"]["schemas"]["Confirmation"]["properties"];
        assert_eq!(answer["Status"]["const"], true);
        assert_eq!(answer["Key"]["const"], "OK");
        let error = &doc["components"]["schemas"]["ErrorEnvelope"]["properties"];
        assert_eq!(error["Status"]["const"], false);
        assert!(doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("errors-as-200 mode"));
    }

    /// `docs/openapi.json` and `docs/openapi-errors-as-200.json` are these
    /// documents. Regenerate them with
    /// `LOYALTY_WRITE_OPENAPI=1 cargo test --lib openapi`.
    #[test]
    fn docs_openapi_json_is_the_served_document() {
        for (errors_as_200, committed, file) in [
            (false, COMMITTED, "openapi.json"),
            (true, COMMITTED_ERRORS_AS_200, "openapi-errors-as-200.json"),
        ] {
            let current =
                serde_json::to_string_pretty(&default_document(errors_as_200)).unwrap() + "\n";
            if std::env::var_os("LOYALTY_WRITE_OPENAPI").is_some() {
                let path = format!("{}/docs/{file}", env!("CARGO_MANIFEST_DIR"));
                std::fs::write(path, &current).unwrap();
                continue;
            }
            assert!(
                committed == current,
                "docs/{file} is stale: run LOYALTY_WRITE_OPENAPI=1 cargo test --lib openapi"
            );
        }
    }
}
