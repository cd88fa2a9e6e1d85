//! Prometheus' HTTP API, as Grafana uses it.

use serde_json::Value;

pub struct Prom {
    pub base: String,
    client: reqwest::Client,
}

impl Prom {
    pub fn new(port: u16) -> Prom {
        Prom {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a client"),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("GET {path}: not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(body["data"].clone())
    }

    pub async fn ready(&self) -> bool {
        self.client
            .get(format!("{}/-/ready", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// An instant query now: the series it returns (a scalar counts as one).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            Some("scalar") | Some("string") => Ok(vec![data["result"].clone()]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    pub async fn count(&self, expr: &str) -> Result<usize, String> {
        self.query(expr).await.map(|v| v.len())
    }

    pub async fn targets(&self) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/targets", &[("state", "active")]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every rule of every loaded group.
    pub async fn rules(&self) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/rules", &[]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// Alerts pending or firing now.
    pub async fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }
}
