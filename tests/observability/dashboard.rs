//! Every query of every panel of `deploy/grafana/*.json`, whatever panels
//! exist when the test runs (rows, collapsed rows' panels included).

use std::path::Path;

use serde_json::Value;

pub struct Query {
    pub dashboard: String,
    pub panel_id: i64,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

pub fn queries(dir: &Path) -> Vec<Query> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read deploy/grafana")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a dashboard");
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        collect(&name, &json["panels"], &mut out);
    }
    out
}

fn collect(dashboard: &str, panels: &Value, out: &mut Vec<Query>) {
    for p in panels.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["hide"].as_bool() == Some(true) {
                continue;
            }
            out.push(Query {
                dashboard: dashboard.to_owned(),
                panel_id: p["id"].as_i64().unwrap_or(-1),
                panel: p["title"].as_str().unwrap_or("").to_owned(),
                ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                expr: t["expr"].as_str().unwrap_or("").to_owned(),
            });
        }
        collect(dashboard, &p["panels"], out);
    }
}

/// Grafana's built-in variables, as Grafana would expand them over this
/// short run (1s scrapes; everything happened within the last minute).
/// Any other `$variable` is an error: a new dashboard variable must be
/// given a value here rather than be skipped.
pub fn expand(expr: &str) -> Result<String, String> {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "5s")
        .replace("${__interval}", "5s")
        .replace("$__range", "5m")
        .replace("${__range}", "5m");
    match out.find('$') {
        Some(i) => Err(format!(
            "unknown dashboard variable at {:?}: give it a value in tests/observability/dashboard.rs",
            &out[i..]
        )),
        None => Ok(out),
    }
}
