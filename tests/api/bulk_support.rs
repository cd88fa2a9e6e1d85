//! Requests of the bulk routes: NDJSON bodies and the export's stream.

use serde_json::Value;

use crate::helpers::*;

/// NDJSON text from JSON values, one per line.
pub fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

impl TestApp {
    pub async fn post_ndjson(&self, login: &str, path: &str, body: String) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .basic_auth(login, Some(password(login)))
                .header("Content-Type", "application/x-ndjson")
                .body(body),
        )
        .await
    }

    /// The raw text of `GET /api/admin/export`.
    pub async fn export_text(&self) -> String {
        let resp = self
            .client
            .get(self.url("/api/admin/export"))
            .basic_auth(ADMIN, Some(password(ADMIN)))
            .send()
            .await
            .expect("the export answers");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        resp.text().await.expect("the export's body")
    }

    pub async fn import(&self, query: &str, dump: String) -> Resp {
        self.post_ndjson(ADMIN, &format!("/api/admin/import{query}"), dump)
            .await
    }
}

/// A dump's lines without what legitimately differs between two exports of
/// the same data: when it was made, records' time left, and line order.
pub fn comparable(dump: &str) -> Vec<String> {
    let mut lines: Vec<String> = dump
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("each line is JSON");
            if let Value::Object(map) = &mut v {
                map.remove("CreatedAt");
                map.remove("TtlMs");
            }
            v.to_string()
        })
        .collect();
    lines.sort();
    lines
}
