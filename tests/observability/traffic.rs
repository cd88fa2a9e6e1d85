//! A little traffic of every kind, over real HTTP: data loading, the card
//! lifecycle, balances, purchases and their reversals, a card replacement
//! (bonus transfer), and errors of every class (routing, parameters,
//! business rules, roles, authentication, throttling).

use serde_json::{json, Value};

pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn key(&self) -> &str {
        self.body["Key"].as_str().unwrap_or("<no Key>")
    }
}

fn password(login: &str) -> String {
    format!("{login}-demo")
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a client"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// The status of an unauthenticated GET, or None while nothing listens.
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        Some(resp.status().as_u16())
    }

    pub async fn get_anon(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn get_as(&self, login: &str, pass: &str, path: &str) -> Answer {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .basic_auth(login, Some(pass)),
        )
        .await
    }

    pub async fn get(&self, login: &str, path: &str) -> Answer {
        self.get_as(login, &password(login), path).await
    }

    pub async fn post(&self, login: &str, path: &str, body: Value) -> Answer {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .basic_auth(login, Some(password(login)))
                .json(&body),
        )
        .await
    }

    pub async fn header_auth(&self, path: &str, authorization: &str) -> Answer {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header("Authorization", authorization),
        )
        .await
    }
}

#[track_caller]
pub fn expect(a: &Answer, status: u16, key: &str, what: &str) {
    assert_eq!(
        (a.status, a.key()),
        (status, key),
        "{what}: unexpected answer {}",
        a.body
    );
}

/// Card numbers and mobiles unique to this run.
pub struct Ids {
    base: u64,
    next: u64,
}

impl Ids {
    pub fn new() -> Ids {
        Ids {
            base: 5_000_000_000_000 + u64::from(std::process::id()) * 1_000,
            next: 0,
        }
    }
    pub fn card(&mut self) -> String {
        self.next += 1;
        format!("{:013}", self.base + self.next)
    }
    pub fn mobile(&mut self) -> String {
        self.next += 1;
        format!(
            "79{:09}",
            (u64::from(std::process::id()) * 1_000 + self.next) % 1_000_000_000
        )
    }
    pub fn code(&mut self) -> String {
        self.next += 1;
        format!("OBS-{}-{}", std::process::id(), self.next)
    }
}

/// Loads, issues, binds and activates a card; returns (number, mobile, code).
pub async fn active_card(api: &Api, ids: &mut Ids) -> (String, String, String) {
    let (number, mobile, code) = (ids.card(), ids.mobile(), ids.code());
    let r = api
        .post(
            "admin",
            "/api/admin/cards",
            json!([{"Number": number, "CategoryCode": 0, "TypeCode": 0}]),
        )
        .await;
    expect(&r, 200, "OK", "load a card");
    expect(
        &api.get("pos", &format!("/api/card/issue?Number={number}"))
            .await,
        200,
        "OK",
        "issue",
    );
    let contact = json!({"Code": code, "Name": "Obs Person", "MobileNumber": mobile, "BirthDate": "1985-03-08"});
    expect(
        &api.post("pos", "/api/contact", contact).await,
        200,
        "OK",
        "contact",
    );
    expect(
        &api.post(
            "pos",
            "/api/card/bindto",
            json!({"Number": number, "MobileNumber": mobile}),
        )
        .await,
        200,
        "OK",
        "bindto",
    );
    expect(
        &api.get("pos", &format!("/api/card/active?Number={number}"))
            .await,
        200,
        "OK",
        "active",
    );
    (number, mobile, code)
}

/// Everything that works, on one instance.
pub async fn business(api: &Api, ids: &mut Ids) {
    // Data loading: created, existing and rejected lines.
    let (a, b) = (ids.card(), ids.card());
    let r = api
        .post(
            "admin",
            "/api/admin/cards",
            json!([
                {"Number": a, "CategoryCode": 0, "TypeCode": 0},
                {"Number": b, "CategoryCode": 0, "TypeCode": 0},
                {"Number": "not-a-card", "CategoryCode": 0, "TypeCode": 0}
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "bulk load: {}", r.body);
    let r = api
        .post(
            "admin",
            "/api/admin/cards",
            json!([{"Number": a, "CategoryCode": 0, "TypeCode": 0}]),
        )
        .await;
    assert_eq!(r.status, 200, "reload: {}", r.body);

    // The lifecycle, balances by every key, block and unblock.
    let (number, mobile, code) = active_card(api, ids).await;
    for path in [
        format!("/api/card/balance/by/{number}"),
        format!("/api/card/balance/by/number/{number}"),
        format!("/api/card/balance/by/phone/{mobile}"),
        format!("/api/card/balance/by/code/{code}"),
        format!("/api/contact/{code}"),
    ] {
        expect(&api.get("pos", &path).await, 200, "OK", &path);
    }
    let block = json!({"Number": number, "BlockReasonCode": "0"});
    expect(
        &api.post("client", "/api/card/block", block).await,
        200,
        "OK",
        "block",
    );
    let unblock = json!({"Number": number, "UnBlockReasonCode": "0"});
    expect(
        &api.post("client", "/api/card/unblock", unblock).await,
        200,
        "OK",
        "unblock",
    );

    // Purchases: a manual accrual, calculate, confirm paying with bonuses,
    // a refund, a cancel of another purchase.
    let bonus = json!({"Number": number, "OperationId": format!("obs-{number}"), "Amount": 100, "TypeCode": 0});
    expect(
        &api.post("marketer", "/api/card/bonus", bonus).await,
        200,
        "OK",
        "manual bonus",
    );
    let calc = json!({"Number": number, "Amount": 150});
    expect(
        &api.post("pos", "/api/purchase/calculate", calc).await,
        200,
        "OK",
        "calculate",
    );
    let (p1, p2) = (format!("P1-{number}"), format!("P2-{number}"));
    for (id, pay) in [(&p1, 30), (&p2, 10)] {
        let confirm = json!({"Number": number, "PurchaseId": id, "Amount": 150, "BonusToPay": pay});
        expect(
            &api.post("pos", "/api/purchase/confirm", confirm).await,
            200,
            "OK",
            "confirm",
        );
    }
    // A held purchase confirmed, and one released (the holds panel).
    let (p3, p4) = (format!("P3-{number}"), format!("P4-{number}"));
    for id in [&p3, &p4] {
        let hold = json!({"Number": number, "PurchaseId": id, "Amount": 150, "BonusToPay": 5});
        expect(
            &api.post("pos", "/api/purchase/hold", hold).await,
            200,
            "OK",
            "hold",
        );
    }
    let confirm = json!({"Number": number, "PurchaseId": p3, "Amount": 150, "BonusToPay": 5});
    expect(
        &api.post("pos", "/api/purchase/confirm", confirm).await,
        200,
        "OK",
        "confirm of a hold",
    );
    expect(
        &api.post("pos", "/api/purchase/release", json!({"PurchaseId": p4}))
            .await,
        200,
        "OK",
        "release",
    );
    let refund = json!({"PurchaseId": p1, "RefundId": "r1", "Amount": 50});
    expect(
        &api.post("pos", "/api/purchase/refund", refund).await,
        200,
        "OK",
        "refund",
    );
    expect(
        &api.post("pos", "/api/purchase/cancel", json!({"PurchaseId": p2}))
            .await,
        200,
        "OK",
        "cancel",
    );
    for path in [
        format!("/api/card/history/{number}?limit=5"),
        format!("/api/card/transactions/{number}?limit=5"),
    ] {
        expect(&api.get("admin", &path).await, 200, "OK", &path);
    }

    // A replacement: blocked for replacement (reason 4), the new card takes
    // the contact and the bonuses (a transfer).
    expect(
        &api.post(
            "cc_operator",
            "/api/card/block",
            json!({"Number": number, "BlockReasonCode": "4"}),
        )
        .await,
        200,
        "OK",
        "block for replacement",
    );
    let new = ids.card();
    let load = json!([{"Number": new, "CategoryCode": 0, "TypeCode": 0}]);
    expect(
        &api.post("admin", "/api/admin/cards", load).await,
        200,
        "OK",
        "load the replacement",
    );
    expect(
        &api.get("pos", &format!("/api/card/issue?Number={new}"))
            .await,
        200,
        "OK",
        "issue the replacement",
    );
    expect(
        &api.post(
            "pos",
            "/api/card/bindto",
            json!({"Number": new, "MobileNumber": mobile}),
        )
        .await,
        200,
        "OK",
        "bind the replacement",
    );
}

/// Refusals of every kind: none of them is a server error.
pub async fn errors(api: &Api, ids: &mut Ids) {
    let unknown = ids.card();
    let r = api.get_anon("/no/such/route").await;
    assert_eq!(r.status, 404, "unmatched: {}", r.body);
    let r = api
        .send(api.client.delete(format!("{}/health", api.base)))
        .await;
    assert_eq!(r.status, 405, "wrong method: {}", r.body);
    let r = api
        .get("pos", &format!("/api/card/balance/by/{unknown}"))
        .await;
    assert_eq!(r.status / 100, 4, "unknown card: {}", r.body);
    let r = api.get("pos", "/api/card/balance/by/12ab").await;
    assert_eq!(r.status, 400, "bad number: {}", r.body);
    let r = api
        .post("pos", "/api/purchase/confirm", json!({"Number": unknown}))
        .await;
    assert_eq!(r.status, 400, "missing parameters: {}", r.body);
    let r = api
        .post("pos", "/api/admin/cards", json!([{"Number": unknown}]))
        .await;
    assert_eq!(r.status, 403, "role: {}", r.body);
    // Authentication: missing, malformed, unknown user, wrong password,
    // then throttled after too many failures.
    let r = api.get_anon("/api/card/balance/by/7000000000001").await;
    assert_eq!(r.status, 401, "no credentials: {}", r.body);
    let r = api
        .header_auth("/api/card/balance/by/7000000000001", "Basic !!!")
        .await;
    assert_eq!(r.status, 401, "malformed: {}", r.body);
    let r = api
        .get_as("nobody", "x", "/api/card/balance/by/7000000000001")
        .await;
    assert_eq!(r.status, 401, "unknown user: {}", r.body);
    let mut throttled = false;
    for _ in 0..8 {
        let r = api
            .get_as("director", "wrong", "/api/card/balance/by/7000000000001")
            .await;
        match r.status {
            401 => {}
            429 => {
                throttled = true;
                break;
            }
            s => panic!("wrong password answered {s}: {}", r.body),
        }
    }
    assert!(throttled, "repeated wrong passwords were never throttled");
}

/// Requests of every route class whose store is away: each must answer 503
/// (never 500, never a hang). Card numbers never seen before, so that no
/// cache can answer them.
pub async fn during_outage(api: &Api, ids: &mut Ids) -> Vec<(String, u16, String)> {
    let mut seen = Vec::new();
    let n = ids.card();
    let requests: Vec<(&str, Answer)> = vec![
        (
            "balance",
            api.get("pos", &format!("/api/card/balance/by/{n}")).await,
        ),
        (
            "purchases",
            api.post(
                "pos",
                "/api/purchase/confirm",
                json!({"Number": n, "PurchaseId": format!("X-{n}"), "Amount": 10, "BonusToPay": 0}),
            )
            .await,
        ),
        (
            "lifecycle",
            api.get("pos", &format!("/api/card/issue?Number={n}")).await,
        ),
        (
            "admin",
            api.get("admin", &format!("/api/card/history/{n}?limit=5"))
                .await,
        ),
        (
            "admin",
            api.post(
                "admin",
                "/api/admin/cards",
                json!([{"Number": n, "CategoryCode": 0, "TypeCode": 0}]),
            )
            .await,
        ),
        ("ready", api.get_anon("/ready").await),
    ];
    for (class, a) in requests {
        assert_eq!(
            a.status, 503,
            "{class} request with the store away: {}",
            a.body
        );
        seen.push((class.to_owned(), a.status, a.key().to_owned()));
    }
    seen
}
