//! An operation's responses: its answer, and its error Keys grouped by the
//! HTTP status they go out with — which, in errors-as-200 mode
//! (`http.business_errors_as_200`), is 200 for every business error.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

use super::operations::Operation;
use crate::api::catalogue::{keeps_status_when_business_errors_as_200, meaning, status_of};
use crate::domain::ErrorKey;

/// The HTTP status `key` goes out with.
pub fn wire_status(key: ErrorKey, errors_as_200: bool) -> u16 {
    let status = status_of(key);
    // The HTTP layer's own refusals come before any route, and keep their
    // status in either mode.
    let transport = matches!(
        key,
        ErrorKey::MalformedRequest | ErrorKey::HeadersTooLarge | ErrorKey::RequestTimeout
    );
    if errors_as_200 && !transport && !keeps_status_when_business_errors_as_200(status) {
        StatusCode::OK.as_u16()
    } else {
        status.as_u16()
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// The error schema of a group of Keys: the operation's refusal when one
/// of them is a status the refusal carries fields on, else the envelope.
fn error_schema(op: &Operation, keys: &[ErrorKey]) -> Value {
    match op.refusal {
        Some(r)
            if keys
                .iter()
                .any(|k| r.statuses.contains(&status_of(*k).as_u16())) =>
        {
            schema_ref(r.name)
        }
        _ => schema_ref("ErrorEnvelope"),
    }
}

fn listing(keys: &[ErrorKey]) -> String {
    keys.iter()
        .map(|k| format!("`{}` ({})", k.as_str(), meaning(*k)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn headers(keys: &[ErrorKey]) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("X-Request-Id".into(), header_ref("X-Request-Id"));
    for k in keys {
        match k {
            ErrorKey::Unauthorized => {
                h.insert("WWW-Authenticate".into(), header_ref("WWW-Authenticate"));
            }
            ErrorKey::RateLimited | ErrorKey::Overloaded => {
                h.insert("Retry-After".into(), header_ref("Retry-After"));
            }
            ErrorKey::MethodNotAllowed => {
                h.insert("Allow".into(), header_ref("Allow"));
            }
            _ => {}
        }
    }
    h
}

/// The raw answer's media type and schema.
fn raw_content(mime: &str, json: bool) -> Value {
    if json {
        json!({"type": "object"})
    } else if mime == "application/x-ndjson" {
        json!({
            "type": "string",
            "contentMediaType": "application/x-ndjson",
            "contentSchema": schema_ref("DumpLine"),
            "description": "one DumpLine JSON object per line",
        })
    } else {
        json!({"type": "string"})
    }
}

pub fn responses(op: &Operation, keys: &[ErrorKey], errors_as_200: bool) -> Value {
    let mut by_status: BTreeMap<u16, Vec<ErrorKey>> = BTreeMap::new();
    for k in keys {
        by_status
            .entry(wire_status(*k, errors_as_200))
            .or_default()
            .push(*k);
    }
    let mut r = Map::new();
    let refused_as_200 = by_status.remove(&200).unwrap_or_default();
    let mut ok_headers = headers(&refused_as_200);
    if !refused_as_200.contains(&ErrorKey::MethodNotAllowed) {
        ok_headers.remove("Allow");
    }
    let mut ok = match op.raw_answer {
        Some((mime, what, json)) => {
            let mut content = Map::new();
            content.insert(mime.into(), json!({"schema": raw_content(mime, json)}));
            if !refused_as_200.is_empty() {
                content.insert(
                    "application/json".into(),
                    json!({"schema": error_schema(op, &refused_as_200)}),
                );
            }
            json!({"description": what, "content": content})
        }
        None if refused_as_200.is_empty() => json!({
            "description": "OK (`Status: true`, `Key: \"OK\"`, `Value: \"\"`)",
            "content": {"application/json": {"schema": schema_ref(op.answer.name)}},
        }),
        None => json!({
            "description": "OK (`Status: true`, `Key: \"OK\"`), or a refusal (`Status: false`): errors-as-200 mode answers every business error with HTTP 200",
            "content": {"application/json": {"schema": {"oneOf": [
                schema_ref(op.answer.name),
                error_schema(op, &refused_as_200),
            ]}}},
        }),
    };
    ok["headers"] = Value::Object(ok_headers);
    if !refused_as_200.is_empty() {
        let names: Vec<&str> = refused_as_200.iter().map(|k| k.as_str()).collect();
        let description = format!(
            "{}. Refusals sent as 200 (`Status: false`): {}",
            ok["description"].as_str().unwrap_or_default(),
            listing(&refused_as_200)
        );
        ok["description"] = json!(description);
        ok["x-error-keys"] = json!(names);
    }
    r.insert("200".into(), ok);
    for (status, keys) in by_status {
        let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        r.insert(
            status.to_string(),
            json!({
                "description": listing(&keys),
                "headers": headers(&keys),
                "content": {"application/json": {"schema": error_schema(op, &keys)}},
                "x-error-keys": names,
            }),
        );
    }
    Value::Object(r)
}

/// The headers the responses refer to.
pub fn header_components() -> Value {
    json!({
        "X-Request-Id": {
            "description": "the caller's X-Request-Id when it is 1-128 visible ASCII characters, else a new id",
            "schema": {"type": "string"},
        },
        "WWW-Authenticate": {
            "description": "Basic realm=\"loyalty\"",
            "schema": {"type": "string"},
        },
        "Retry-After": {
            "description": "seconds to wait before retrying (RateLimited, Overloaded)",
            "schema": {"type": "integer", "minimum": 0},
        },
        "Allow": {
            "description": "with MethodNotAllowed: the methods the path answers, comma-separated",
            "schema": {"type": "string"},
        },
    })
}
