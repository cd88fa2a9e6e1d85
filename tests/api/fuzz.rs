//! Property test: random methods, paths (routes and near-routes, any case,
//! odd escapes), query strings, headers (credentials good and bad), and
//! bodies (random bytes or random JSON) against the in-process server,
//! plus random bytes straight onto the socket. Never a panic, never a 5xx,
//! and every /api answer is the envelope. Fixed seed, bounded case count.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::helpers::*;

static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on the server's threads (test threads are named after
/// their test's path, which has `::`; the server's are not).
fn count_server_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            if !name.contains("::") && name != "main" {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// Routes that take a path segment.
const CAPTURING: &[&str] = &[
    "/api/card/balance/by/",
    "/api/card/balance/by/phone/",
    "/api/card/balance/by/code/",
    "/api/card/balance/by/number/",
    "/api/card/history/",
    "/api/card/transactions/",
    "/api/contact/",
];

/// Routes without one (in odd cases too).
const LITERAL: &[&str] = &[
    "/API/Card/Issue",
    "/api/card/issue",
    "/api/card/bindto",
    "/api/card/binto",
    "/api/card/active",
    "/api/card/block",
    "/api/card/unblock",
    "/api/card/bonus",
    "/api/contact",
    "/api/admin/cards",
    "/api/purchase/calculate",
    "/api/purchase/confirm",
    "/api/purchase/cancel",
    "/api/purchase/refund",
    "/health",
    "/ready",
];

const NAMES: &[&str] = &[
    "Number",
    "number",
    "MobileNumber",
    "ContactMobileNumber",
    "BlockReasonCode",
    "UnBlockReasonCode",
    "Code",
    "Name",
    "BirthDate",
    "Amount",
    "BonusToPay",
    "PurchaseId",
    "RefundId",
    "OperationId",
    "TypeCode",
    "CategoryCode",
    "limit",
    "cursor",
    "x",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,22}",
        "[A-Za-z0-9_-]{1,70}",
        "(%[0-9A-Fa-f]{2}|%[g-z]{2}|%|[a-z0-9+. ]){1,12}",
        "\\PC{1,8}",
        Just("7000000000001".to_owned()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[0-9]{1,25}(\\.[0-9]{0,5})?".prop_map(|s| serde_json::from_str(&s).unwrap_or(Value::Null)),
        "\\PC{0,30}".prop_map(Value::String),
        "[0-9+() -]{0,20}".prop_map(Value::String),
        // Values that pass validation, so that requests reach the engine.
        prop::sample::select(vec![
            "7000000000001",
            "79161234567",
            "C-1",
            "0",
            "4",
            "p-1",
            "1990-01-31",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        prop::sample::select(vec![0.01, 1.0, 150.0, 30.0, 1e9, 1e9 + 0.01]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Bytes(Vec<u8>),
    Json(Value),
}

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    auth: Option<String>,
    headers: Vec<(String, String)>,
    body: Body,
}

fn case() -> impl Strategy<Value = Case> {
    let odd_method = || {
        prop::sample::select(vec!["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW"])
            .prop_map(str::to_owned)
    };
    // Mostly the method the route answers, so that requests get past
    // routing; sometimes another.
    let capturing = (
        prop::sample::select(CAPTURING),
        segment(),
        prop_oneof![8 => Just("GET".to_owned()), 1 => Just("POST".to_owned()), 1 => odd_method()],
    )
        .prop_map(|(p, s, m)| (format!("{p}{s}"), m));
    let literal = (
        prop::sample::select(LITERAL),
        prop_oneof![6 => Just("POST".to_owned()), 3 => Just("GET".to_owned()), 1 => odd_method()],
    )
        .prop_map(|(p, m)| (p.to_owned(), m));
    // Near misses: a route with more after it, or /api with anything.
    let near = (
        prop::sample::select(LITERAL),
        segment(),
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            odd_method()
        ],
    )
        .prop_map(|(p, s, m)| (format!("{p}/{s}"), m));
    let route = prop_oneof![5 => capturing, 5 => literal, 1 => near];
    let route = (route, prop::bool::weighted(0.2)).prop_map(|((p, m), slash)| {
        if slash {
            (format!("{p}/"), m)
        } else {
            (p, m)
        }
    });
    let query = prop::collection::vec((prop::sample::select(NAMES), segment()), 0..4)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let auth = prop_oneof![
        1 => Just(None),
        12 => prop::sample::select(ALL_USERS.to_vec()).prop_map(|u| Some(basic(u, &password(u)))),
        1 => Just(Some(basic("nobody", "wrong"))),
        1 => "\\PC{0,40}".prop_map(|s| Some(format!("Basic {s}"))),
        1 => "[A-Za-z0-9+/=]{0,60}".prop_map(|s| Some(format!("Basic {s}"))),
        1 => "\\PC{0,20}".prop_map(Some),
    ];
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec![
                "Content-Type",
                "Content-Encoding",
                "X-Request-Id",
                "Accept",
                "Transfer-Encoding-X",
                "X-Forwarded-For",
            ]),
            "[ -~]{0,40}",
        ),
        0..3,
    )
    .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let body = prop_oneof![
        1 => Just(Body::None),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Body::Bytes),
        4 => json_value().prop_map(Body::Json),
    ];
    (route, query, auth, headers, body).prop_map(|((path, method), query, auth, headers, body)| {
        Case {
            method,
            path,
            query,
            auth,
            headers,
            body,
        }
    })
}

fn basic(login: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

#[test]
fn random_requests_never_panic_never_5xx_and_always_answer_the_envelope() {
    count_server_panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    // Something to find: a card and a contact the random requests may hit.
    rt.block_on(async {
        app.load_cards(&["7000000000001"]).await;
    });
    let client = reqwest::Client::new();
    let base = app.address.clone();
    runner(400)
        .run(&case(), |c| {
            let mut url = match reqwest::Url::parse(&format!("{base}{}", c.path)) {
                Ok(u) => u,
                Err(_) => return Ok(()),
            };
            for (k, v) in &c.query {
                url.query_pairs_mut().append_pair(k, v);
            }
            let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
            let mut req = client.request(method.clone(), url);
            if let Some(a) = &c.auth {
                req = req.header("Authorization", a.as_str());
            }
            for (k, v) in &c.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req = match &c.body {
                Body::None => req,
                Body::Bytes(b) => req.body(b.clone()),
                Body::Json(v) => req.body(v.to_string()),
            };
            let (status, text) = rt
                .block_on(async {
                    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
                    let status = resp.status().as_u16();
                    let text = resp.text().await.map_err(|e| format!("cut short: {e}"))?;
                    Ok::<_, String>((status, text))
                })
                .map_err(|e| TestCaseError::fail(format!("{e} for {c:?}")))?;
            prop_assert!(status < 500, "{status} {text} for {c:?}");
            if method != reqwest::Method::HEAD && c.path.to_ascii_lowercase().starts_with("/api") {
                let body: Value = serde_json::from_str(&text)
                    .map_err(|_| TestCaseError::fail(format!("not JSON: {text:?} for {c:?}")))?;
                prop_assert!(body["Status"].is_boolean(), "{text} for {c:?}");
                prop_assert!(body["Key"].is_string(), "{text} for {c:?}");
                prop_assert!(body["Value"].is_string(), "{text} for {c:?}");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        SERVER_PANICS.load(Ordering::SeqCst),
        0,
        "the server panicked"
    );
    // Still serving (the random wrong passwords may have throttled logins).
    rt.block_on(async {
        let r = app.send(app.client.get(app.url("/health"))).await;
        r.ok();
    });
}

#[test]
fn random_bytes_on_the_socket_are_refused_without_a_5xx_and_the_server_stays_up() {
    count_server_panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let port = app.server.as_ref().unwrap().port;
    let request_line = prop_oneof![
        Just(Vec::new()),
        Just(b"GET /api/card/balance/by/1234567 HTTP/1.1\r\n".to_vec()),
        Just(b"POST /api/card/issue HTTP/1.1\r\nContent-Length: 5\r\n".to_vec()),
        Just(b"POST /api/card/issue HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
    ];
    let bytes = (request_line, prop::collection::vec(any::<u8>(), 0..600));
    runner(120)
        .run(&bytes, |(head, tail)| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(&head);
            let _ = s.write_all(&tail);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            let text = String::from_utf8_lossy(&out);
            let status = text
                .strip_prefix("HTTP/1.1 ")
                .and_then(|t| t.get(..3))
                .and_then(|t| t.parse::<u16>().ok());
            prop_assert!(status.is_none_or(|s| s < 500), "{text}");
            Ok(())
        })
        .unwrap();
    assert_eq!(
        SERVER_PANICS.load(Ordering::SeqCst),
        0,
        "the server panicked"
    );
    rt.block_on(async {
        let r = app.send(app.client.get(app.url("/health"))).await;
        r.ok();
    });
}
