//! Every answer of the suite is checked against docs/openapi.json: an error
//! Key that the document does not list for the route (with that HTTP
//! status) fails the test that provoked it. So the document's error table
//! cannot drift from what the server answers.

use std::sync::OnceLock;

use serde_json::Value;

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json"))
            .expect("docs/openapi.json is JSON")
    })
}

fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                t.eq_ignore_ascii_case(p)
            }
        })
}

const TRANSPORT_KEYS: [&str; 3] = ["MalformedRequest", "HeadersTooLarge", "RequestTimeout"];

#[track_caller]
pub fn check(method: &reqwest::Method, path: &str, status: u16, body: &Value) {
    let Some(key) = body.get("Key").and_then(Value::as_str) else {
        return; // not the envelope: /metrics, the document itself
    };
    if key == "OK" {
        return;
    }
    // The HTTP layer answers these before any route is matched (a head that
    // is garbage, too large, or late — a loaded machine can make a test's
    // own request late): any path may get them, and the document lists them
    // in its catalogue with their status.
    if TRANSPORT_KEYS.contains(&key) {
        let listed = document()["x-error-catalogue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["Key"] == key && e["status"] == status);
        assert!(
            listed,
            "{key} with HTTP {status} is not in the document's catalogue"
        );
        return;
    }
    let paths = document()["paths"].as_object().unwrap();
    let method = method.as_str().to_ascii_lowercase();
    let candidates: Vec<(&String, &Value)> =
        paths.iter().filter(|(t, _)| matches(t, path)).collect();
    let Some((template, op)) = candidates
        .iter()
        .find_map(|(t, item)| item.get(&method).map(|op| (t, op)))
    else {
        let allowed: &[&str] = if candidates.is_empty() {
            &["NotFound", "Unauthorized", "RateLimited"]
        } else {
            &["MethodNotAllowed", "Unauthorized", "RateLimited"]
        };
        assert!(
            allowed.contains(&key),
            "{method} {path}: no such operation, yet answered {key}"
        );
        return;
    };
    let Some(documented) = op["x-error-keys"].get(key) else {
        panic!("{method} {path} answered {key}, which docs/openapi.json does not list for {template}: {body}");
    };
    assert!(
        documented == status || (status == 200 && body["Status"] == false),
        "{method} {path} answered {key} with HTTP {status}; docs/openapi.json says {documented}"
    );
}

#[test]
#[should_panic(expected = "does not list")]
fn a_key_the_document_does_not_list_for_the_route_fails_the_test() {
    let body = serde_json::json!({"Status": false, "Key": "InsufficientBonuses", "Value": "x"});
    check(&reqwest::Method::GET, "/api/card/Issue", 409, &body);
}

#[test]
fn documented_keys_and_unknown_routes_pass() {
    let refused = |key: &str| serde_json::json!({"Status": false, "Key": key, "Value": "x"});
    check(
        &reqwest::Method::GET,
        "/api/card/issue",
        409,
        &refused("StatusError"),
    );
    check(
        &reqwest::Method::GET,
        "/api/card/issue",
        200,
        &refused("StatusError"),
    );
    check(
        &reqwest::Method::GET,
        "/api/nowhere",
        404,
        &refused("NotFound"),
    );
    check(
        &reqwest::Method::PUT,
        "/api/card/issue",
        405,
        &refused("MethodNotAllowed"),
    );
}
