//! The document's rules against the server. For every input of every
//! operation the served document describes (path and query parameters, body
//! properties, the lines of the bulk loads) and every rule its schema states
//! — pattern, minLength/maxLength, minimum/maximum/exclusiveMinimum,
//! multipleOf, enum, date format — a value just inside is not refused with
//! the field's `x-invalid-key`, and a value just outside is refused with it.
//! A rule the test has no cases for fails it: a new pattern needs its cases
//! here.

use serde_json::{json, Map, Value};

use crate::helpers::*;

/// Values in and out of each pattern the document uses. `{card}` and
/// `{code}` stand for an existing card and contact.
fn pattern_cases(pattern: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    match pattern {
        "^[0-9]{6,19}$" => (
            vec!["123456", "1234567890123456789"],
            vec!["12345", "12345678901234567890", "12345a", "-123456"],
        ),
        "^(?:[0-9]{6,19}|[A-Za-z0-9_-]{1,64})$" => {
            (vec!["{card}", "{code}"], vec!["ab.c", "a b", "é"])
        }
        r"^ *\+?[-() ]*(?:[0-9][-() ]*){10,15}$" => (
            vec!["+7 (916) 000-00-01", "1234567890", "123456789012345"],
            vec![
                "123456789",
                "1234567890123456",
                "++79160000001",
                "7916000000a",
            ],
        ),
        "^[A-Za-z0-9_-]{1,64}$" => (vec!["a", "A_b-9"], vec!["a.b", "a b", "é"]),
        "^[!-~]+$" => (vec!["!", "~"], vec!["a b", "é"]),
        r"^[^\x00-\x1F\x7F-\x9F]*$" => (vec!["Ann", "Ænne"], vec!["a\u{1}b", "a\u{7f}"]),
        "^[0-9]{1,19}$" => (
            vec!["0", "9999999999999999999"],
            vec!["-1", "1a", "12345678901234567890"],
        ),
        "^(?:[0-9]{4}-[0-9]{2}-[0-9]{2})?$" => {
            (vec!["1990-01-31"], vec!["1990-1-31", "31.01.1990"])
        }
        other => panic!("no cases for the pattern {other}: add them to pattern_cases"),
    }
}

/// A value of `len` characters that the pattern accepts.
fn filler(pattern: &str, len: usize) -> String {
    if pattern.contains("{10,15}") {
        // A mobile number: digits, then separators up to the length.
        format!("79160000001{}", "-".repeat(len - 11))
    } else {
        "a".repeat(len)
    }
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

struct Case {
    rule: String,
    value: Value,
    inside: bool,
    /// The Key when outside, if not the field's own.
    key: Option<&'static str>,
}

fn case(rule: &str, value: Value, inside: bool) -> Case {
    Case {
        rule: rule.to_owned(),
        value,
        inside,
        key: None,
    }
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The cases of every rule `schema` states.
fn cases(schema: &Value, required: bool) -> Vec<Case> {
    let mut out = Vec::new();
    let text = |s: &str| Value::String(s.to_owned());
    if let Some(values) = schema["enum"].as_array() {
        for v in values {
            out.push(case("enum", v.clone(), true));
        }
        let next = values
            .iter()
            .filter_map(|v| v.as_str()?.parse::<u64>().ok())
            .max()
            .map_or(99, |m| m + 1);
        out.push(case("enum", text(&next.to_string()), false));
    }
    if let Some(p) = schema["pattern"].as_str() {
        let (inside, outside) = pattern_cases(p);
        out.extend(inside.into_iter().map(|v| case("pattern", text(v), true)));
        out.extend(outside.into_iter().map(|v| case("pattern", text(v), false)));
        if let Some(max) = schema["maxLength"].as_u64() {
            out.push(case("maxLength", text(&filler(p, max as usize)), true));
            out.push(case("maxLength", text(&filler(p, max as usize + 1)), false));
        }
    } else if let Some(max) = schema["maxLength"].as_u64() {
        out.push(case("maxLength", text(&"a".repeat(max as usize)), true));
        out.push(case(
            "maxLength",
            text(&"a".repeat(max as usize + 1)),
            false,
        ));
    }
    if schema["minLength"] == json!(1) && required {
        // "" is a missing parameter (docs/api.md §5: null and "" are absent).
        out.push(Case {
            key: Some("RequiredParameterNotSpecified"),
            ..case("minLength", text(""), false)
        });
    }
    if schema["format"] == "date" {
        out.push(case("format", text(&today()), true));
        out.push(case("format", text("2026-02-30"), false));
        out.push(case("format", text("2026-1-01"), false));
    }
    let integer = schema["type"] == "integer";
    if let Some(max) = schema.get("maximum") {
        out.push(case("maximum", max.clone(), true));
        assert_eq!(max, &json!(1_000_000_000), "the amount cap");
        out.push(case("maximum", number("1000000000.01"), false));
    }
    if schema.get("exclusiveMinimum") == Some(&json!(0)) {
        out.push(case("exclusiveMinimum", number("0.01"), true));
        out.push(case("exclusiveMinimum", number("0"), false));
    }
    if schema.get("minimum") == Some(&json!(0)) {
        if integer {
            out.push(case("minimum", text("0"), true));
            out.push(case("minimum", text("-1"), false));
        } else {
            out.push(case("minimum", number("0"), true));
            out.push(case("minimum", number("-0.01"), false));
        }
    }
    if schema.get("multipleOf") == Some(&json!(0.01)) {
        out.push(case("multipleOf", number("12.34"), true));
        out.push(case("multipleOf", number("12.345"), false));
    }
    for rule in [
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "const",
        "minProperties",
    ] {
        assert!(schema.get(rule).is_none(), "no cases for {rule}: add them");
    }
    out
}

/// A request of one operation.
#[derive(Clone)]
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

/// Existing things the requests point at.
struct Fixtures {
    card: String,
    code: String,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A fresh request of `op_id` that passes every format check, with the
/// field being tried (its name and value) considered where the state it
/// needs depends on it.
async fn base(
    app: &TestApp,
    op_id: &str,
    field: &str,
    value: &Value,
) -> (Request, Map<String, Value>) {
    let mut captures = Map::new();
    let mut body = Map::new();
    let id = unique_code();
    match op_id {
        "GetBalanceByCardNumber"
        | "GetBalanceByCardNumber_number"
        | "GetCardHistory"
        | "GetCardTransactions" => {
            let (number, _) = app.card_in(State::Active).await;
            captures.insert("number".into(), json!(number));
        }
        "GetBalanceByMobileNumber" => {
            let (_, c) = app.card_in(State::Active).await;
            captures.insert("phone".into(), json!(c.unwrap().mobile));
        }
        "GetBalanceByContactCode" | "GetContact" => {
            let (_, c) = app.card_in(State::Active).await;
            captures.insert("code".into(), json!(c.unwrap().code));
        }
        "Issue_get" | "Issue_post" => {
            body.insert("Number".into(), json!(app.new_card().await));
        }
        "Active_get" | "Active_post" => {
            let (number, _) = app.card_in(State::IssuedBound).await;
            body.insert("Number".into(), json!(number));
        }
        "BindTo" | "BindTo_binto" => {
            let (number, _) = app.card_in(State::IssuedUnbound).await;
            body.insert("Number".into(), json!(number));
            body.insert(
                "MobileNumber".into(),
                json!(app.new_contact(true).await.mobile),
            );
        }
        "Block" => {
            let (number, _) = app.card_in(State::Active).await;
            body.insert("Number".into(), json!(number));
            body.insert("BlockReasonCode".into(), json!("0"));
        }
        "UnBlock" => {
            // Blocked with the reason the unblock reason answers.
            let reason = if field == "UnBlockReasonCode" && value.as_str().is_some_and(|v| v < "4")
            {
                value.as_str().unwrap().to_owned()
            } else {
                "0".to_owned()
            };
            let (number, _) = app.card_in(State::Active).await;
            app.block(ADMIN, &number, &reason).await.ok();
            body.insert("Number".into(), json!(number));
            body.insert("UnBlockReasonCode".into(), json!(reason));
        }
        "UpsertContact" => {
            body.insert("Code".into(), json!(id));
            body.insert("MobileNumber".into(), json!(unique_mobile()));
        }
        "CalculatePurchase" | "ConfirmPurchase" => {
            let (number, _) = app.card_in(State::Active).await;
            body.insert("Number".into(), json!(number));
            body.insert("Amount".into(), json!(1_000_000_000));
            body.insert("PurchaseId".into(), json!(id));
        }
        "HoldPurchase" => {
            let (number, _) = app.card_in(State::Active).await;
            body.insert("Number".into(), json!(number));
            body.insert("Amount".into(), json!(1_000_000_000));
            body.insert("PurchaseId".into(), json!(id));
            body.insert("BonusToPay".into(), json!(0));
        }
        "ReleaseHold" => {
            let (number, _) = app.card_in(State::Active).await;
            app.post(
                ADMIN,
                "/api/purchase/hold",
                json!({"Number": number, "PurchaseId": id, "Amount": 100, "BonusToPay": 0}),
            )
            .await
            .ok();
            body.insert("PurchaseId".into(), json!(id));
        }
        "CancelPurchase" | "RefundPurchase" => {
            let (number, _) = app.card_in(State::Active).await;
            app.post(
                ADMIN,
                "/api/purchase/confirm",
                json!({"Number": number, "PurchaseId": id, "Amount": 1_000_000_000}),
            )
            .await
            .ok();
            body.insert("PurchaseId".into(), json!(id));
            body.insert("RefundId".into(), json!(format!("{id}-r")));
            body.insert("Amount".into(), json!(1));
        }
        "AccrueBonus" => {
            let (number, _) = app.card_in(State::Active).await;
            body.insert("Number".into(), json!(number));
            body.insert("OperationId".into(), json!(id));
            body.insert("Amount".into(), json!(100));
            body.insert("TypeCode".into(), json!("0"));
        }
        "LoadCards" => {
            body.insert("Number".into(), json!(unique_card()));
        }
        "LoadContacts" => {
            body.insert("Code".into(), json!(id));
            body.insert("MobileNumber".into(), json!(unique_mobile()));
        }
        other => panic!("no base request for {other}: add one"),
    }
    if op_id == "CalculatePurchase" {
        body.remove("PurchaseId");
    }
    if op_id == "CancelPurchase" {
        body.remove("RefundId");
        body.remove("Amount");
    }
    let request = Request {
        method: String::new(),
        path: String::new(),
        query: Vec::new(),
        body: Some(Value::Object(body)),
    };
    (request, captures)
}

async fn send(app: &TestApp, r: &Request) -> Resp {
    let url = app.url(&r.path);
    let builder = if r.method == "get" {
        app.client.get(url)
    } else {
        app.client.post(url)
    };
    let mut builder = builder
        .basic_auth(ADMIN, Some(password(ADMIN)))
        .query(&r.query);
    if let Some(body) = &r.body {
        builder = builder
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    app.send(builder).await
}

/// The Key the field's value answered: the envelope's, or for a bulk load
/// the line's.
fn answered(r: &Resp, bulk: bool) -> Option<String> {
    assert!(r.status < 500, "{}", r.body);
    if bulk && r.key() == "OK" {
        return r.body["RejectedLines"][0]["Key"]
            .as_str()
            .map(str::to_owned);
    }
    (r.key() != "OK").then(|| r.key().to_owned())
}

struct Input {
    place: &'static str,
    name: String,
    schema: Value,
    required: bool,
}

fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

fn inputs(doc: &Value, op: &Value) -> (Vec<Input>, bool) {
    let mut out = Vec::new();
    for p in op["parameters"].as_array().unwrap() {
        out.push(Input {
            place: if p["in"] == "path" { "path" } else { "query" },
            name: p["name"].as_str().unwrap().to_owned(),
            schema: p["schema"].clone(),
            required: p["required"] == true,
        });
    }
    let content = &op["requestBody"]["content"]["application/json"]["schema"];
    let (object, bulk) = match content["type"].as_str() {
        Some("array") => (resolve(doc, &content["items"]), true),
        _ => (content, false),
    };
    let required: Vec<&Value> = object["required"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    if let Some(props) = object["properties"].as_object() {
        for (name, schema) in props {
            out.push(Input {
                place: "body",
                name: name.clone(),
                schema: schema.clone(),
                required: required.contains(&&json!(name)),
            });
        }
    }
    (out, bulk)
}

#[tokio::test]
async fn every_documented_rule_holds_just_inside_and_just_outside() {
    let app = spawn_app().await;
    let doc = app
        .send(app.client.get(app.url("/api/openapi.json")))
        .await
        .body;
    let (card, contact) = app.card_in(State::Active).await;
    let fixtures = Fixtures {
        card,
        code: contact.unwrap().code,
    };
    let mut tried = 0;
    let mut failures = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let (inputs, bulk) = inputs(&doc, op);
            for input in inputs {
                let Some(key) = input.schema["x-invalid-key"].as_str() else {
                    continue;
                };
                for c in cases(&input.schema, input.required) {
                    let value = match &c.value {
                        Value::String(s) if s == "{card}" => json!(fixtures.card),
                        Value::String(s) if s == "{code}" => json!(fixtures.code),
                        v => v.clone(),
                    };
                    let (mut request, mut captures) = base(&app, op_id, &input.name, &value).await;
                    request.method = method.clone();
                    let mut body = request.body.take().unwrap();
                    match input.place {
                        "path" => {
                            captures.insert(input.name.clone(), value.clone());
                        }
                        "query" => {}
                        _ => {
                            body[&input.name] = value.clone();
                        }
                    }
                    let mut path = template.clone();
                    for (name, v) in &captures {
                        path = path.replace(&format!("{{{name}}}"), &encode(&as_text(v)));
                    }
                    request.path = path;
                    if input.place == "query" {
                        request.query.push((input.name.clone(), as_text(&value)));
                    }
                    let fields = body.as_object().cloned().unwrap_or_default();
                    if method == "get" {
                        for (name, v) in &fields {
                            if !(input.place == "query" && *name == input.name) {
                                request.query.push((name.clone(), as_text(v)));
                            }
                        }
                    } else if bulk {
                        request.body = Some(json!([fields]));
                    } else {
                        request.body = Some(Value::Object(fields));
                    }
                    let r = send(&app, &request).await;
                    let got = answered(&r, bulk);
                    let expected = c.key.unwrap_or(key);
                    let holds = if c.inside {
                        got.as_deref() != Some(key)
                            && got.as_deref() != Some("InvalidJson")
                            && got.as_deref() != Some("RequiredParameterNotSpecified")
                    } else {
                        got.as_deref() == Some(expected)
                    };
                    tried += 1;
                    if !holds {
                        failures.push(format!(
                            "{method} {template} {} {} ({}) {}: {value} answered {got:?}, {}",
                            input.place,
                            input.name,
                            c.rule,
                            if c.inside { "inside" } else { "outside" },
                            r.body
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(tried > 300, "only {tried} cases");
}
