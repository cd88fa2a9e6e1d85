//! Reports as single HTML files that need nothing but a browser: the
//! tables of the Markdown report and the charts, drawn by uPlot (MIT,
//! `assets/`, bundled into the page). The page's Content-Security-Policy
//! forbids every fetch, so a page that renders here renders offline.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::capacity::CapacityReport;
use crate::report::Summary;

const UPLOT_JS: &str = include_str!("../assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uPlot.min.css");

/// Draws every chart of `CHARTS`; each chart's element gets the number of
/// data points it holds (`data-points`), and the body `data-charts` =
/// `rendered` when all are drawn (what the headless-browser check reads).
const DRAW_JS: &str = r#"
function count(series) {
  let n = 0;
  for (const s of series) for (const v of s.data) if (v !== null && v !== undefined && !Number.isNaN(v)) n++;
  return n;
}
const PCT_TICKS = [0, 1, 2, 3, 4, 5];
const PCT_NAMES = ['p0', 'p90', 'p99', 'p99.9', 'p99.99', 'p99.999'];
function draw(c) {
  const el = document.getElementById(c.id);
  const points = count(c.series);
  el.dataset.points = points;
  if (points === 0) {
    el.textContent = c.title + ': no data (' + c.empty + ')';
    return;
  }
  const x = { label: c.xlabel };
  if (c.percentile_axis) {
    x.splits = () => PCT_TICKS;
    x.values = (u, splits) => splits.map(v => PCT_NAMES[v] || '');
  }
  const opts = {
    title: c.title,
    width: Math.max(600, Math.min(1100, window.innerWidth - 60)),
    height: 300,
    scales: { x: { time: false }, y: c.log_y ? { distr: 3 } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [x, { label: c.ylabel, size: 60 }],
    series: [{ label: c.xlabel }].concat(c.series.map(s => ({
      label: s.label, stroke: s.color, width: 2, spanGaps: false,
      points: { show: c.x.length < 40 }, dash: s.dash || undefined,
    }))),
  };
  new uPlot(opts, [c.x].concat(c.series.map(s => s.data)), el);
}
try {
  for (const c of CHARTS) draw(c);
  document.body.dataset.charts = 'rendered';
} catch (e) {
  document.body.dataset.charts = 'error: ' + e;
}
"#;

fn series(label: &str, color: &str, data: Vec<Option<f64>>) -> Value {
    json!({"label": label, "color": color, "data": data})
}

fn chart(
    id: &str,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    x: Vec<f64>,
    series: Vec<Value>,
    empty: &str,
) -> Value {
    json!({"id": id, "title": title, "xlabel": xlabel, "ylabel": ylabel, "x": x,
           "series": series, "empty": empty})
}

/// The summary of one run.
pub fn summary(s: &Summary) -> String {
    let x: Vec<f64> = s.series.iter().map(|r| f64::from(r.t)).collect();
    let col = |f: &dyn Fn(&crate::report::SecondRow) -> Option<f64>| -> Vec<Option<f64>> {
        s.series.iter().map(f).collect()
    };
    let open = s.settings.model == "open";
    let mut charts = vec![
        chart(
            "rate",
            if open {
                "Rate per second: target against achieved (whole run, warm-up included)"
            } else {
                "Rate per second (closed model: no target)"
            },
            "second",
            "per second",
            x.clone(),
            vec![
                series("target arrivals/s", "#999", col(&|r| r.target_rps)),
                series(
                    "achieved arrivals/s",
                    "#1f77b4",
                    col(&|r| open.then_some(r.achieved_rps)),
                ),
                series("client requests/s", "#2ca02c", col(&|r| Some(r.requests as f64))),
                series("server requests/s", "#d62728", col(&|r| r.server_rps)),
            ],
            "no second completed",
        ),
        chart(
            "latency",
            &format!(
                "Latency per second, ms (client from {}; server from its buckets)",
                s.client.latency_from
            ),
            "second",
            "ms",
            x.clone(),
            vec![
                series("client p50", "#1f77b4", col(&|r| r.p50_ms)),
                series("client p99", "#ff7f0e", col(&|r| r.p99_ms)),
                series("server p50", "#2ca02c", col(&|r| r.server_p50_ms)),
                series("server p99", "#d62728", col(&|r| r.server_p99_ms)),
            ],
            "no second completed",
        ),
        chart(
            "errors",
            "Error answers per second",
            "second",
            "errors",
            x.clone(),
            vec![
                series("client", "#d62728", col(&|r| Some(r.errors as f64))),
                series("server loyalty_errors_total", "#9467bd", col(&|r| r.server_errors)),
            ],
            "no second completed",
        ),
        chart(
            "cpu",
            "CPU per second, % of one core",
            "second",
            "% of a core",
            x,
            vec![
                series("server", "#d62728", col(&|r| r.server_cpu_pct)),
                series("client (this tool)", "#1f77b4", col(&|r| r.client_cpu_pct)),
            ],
            "no CPU figures: the server's pid was not found (--server-pid) and /proc was not readable",
        ),
    ];
    charts.push(distribution_chart(s));
    if s.steps.len() > 1 {
        charts.extend(step_charts(&s.steps));
    }
    let md = s.markdown();
    let (head, rest) = md.split_at(md.find("\n## ").unwrap_or(md.len()));
    page(
        &format!("{} load test", s.scenario),
        &markdown_to_html(head),
        &charts,
        &markdown_to_html(rest),
    )
}

fn distribution_chart(s: &Summary) -> Value {
    // x: -log10(1 - q): 1 is p90, 2 p99, 3 p99.9...; the max sits just
    // past the last finite point.
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &(q, ms) in &s.distribution {
        let pos = if q >= 100.0 {
            x.last().copied().unwrap_or(0.0_f64).max(0.0) + 0.25
        } else {
            (-(1.0 - q / 100.0).log10()).clamp(0.0, 5.5)
        };
        if x.last().is_some_and(|l| pos <= *l) {
            continue;
        }
        x.push(pos);
        y.push(Some(ms.max(0.001)));
    }
    let c = &s.client;
    let mut v = chart(
        "distribution",
        &format!(
            "Latency distribution, measured window (from {}): p50 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} ms",
            c.latency_from, c.p50_ms, c.p99_ms, c.p999_ms, c.max_ms
        ),
        "percentile",
        "ms (log)",
        x,
        vec![series("latency", "#ff7f0e", y)],
        "no request in the measured window",
    );
    v["percentile_axis"] = json!(true);
    v["log_y"] = json!(true);
    v
}

fn step_charts(steps: &[crate::report::StepRow]) -> Vec<Value> {
    let x: Vec<f64> = steps.iter().map(|r| r.target_rps).collect();
    let col = |f: &dyn Fn(&crate::report::StepRow) -> Option<f64>| -> Vec<Option<f64>> {
        steps.iter().map(f).collect()
    };
    vec![
        chart(
            "steps-rate",
            "Each step: achieved against target arrivals/s",
            "target arrivals/s",
            "per second",
            x.clone(),
            vec![
                series("target", "#999", col(&|r| Some(r.target_rps))),
                series("achieved", "#1f77b4", col(&|r| Some(r.achieved_rps))),
                series("answers", "#2ca02c", col(&|r| Some(r.rps))),
            ],
            "no step",
        ),
        chart(
            "steps-latency",
            "Each step: latency from the due time, ms",
            "target arrivals/s",
            "ms",
            x.clone(),
            vec![
                series("p50", "#1f77b4", col(&|r| Some(r.p50_ms))),
                series("p99", "#ff7f0e", col(&|r| Some(r.p99_ms))),
                series("p99.9", "#d62728", col(&|r| Some(r.p999_ms))),
                series("server p99", "#2ca02c", col(&|r| r.server_p99_ms)),
            ],
            "no step",
        ),
        chart(
            "steps-cpu",
            "Each step: CPU, % of one core",
            "target arrivals/s",
            "% of a core",
            x,
            vec![
                series("server", "#d62728", col(&|r| r.server_cpu_pct)),
                series("client (this tool)", "#1f77b4", col(&|r| r.client_cpu_pct)),
            ],
            "no CPU figures: the server's pid was not found (--server-pid)",
        ),
    ]
}

/// The capacity search's report.
pub fn capacity(c: &CapacityReport) -> String {
    let mut charts = step_charts(&c.steps);
    let x: Vec<f64> = c.series.iter().map(|r| f64::from(r.t)).collect();
    let col = |f: &dyn Fn(&crate::report::SecondRow) -> Option<f64>| -> Vec<Option<f64>> {
        c.series.iter().map(f).collect()
    };
    charts.push(chart(
        "timeline",
        "Whole search, per second: rate and p99",
        "second",
        "per second / ms",
        x,
        vec![
            series("target arrivals/s", "#999", col(&|r| r.target_rps)),
            series(
                "achieved arrivals/s",
                "#1f77b4",
                col(&|r| Some(r.achieved_rps)),
            ),
            series("client p99 ms", "#ff7f0e", col(&|r| r.p99_ms)),
            series("server p99 ms", "#d62728", col(&|r| r.server_p99_ms)),
        ],
        "no second completed",
    ));
    let md = c.markdown();
    let (head, rest) = md.split_at(md.find("\n## ").unwrap_or(md.len()));
    page(
        &format!("{} capacity", c.scenario),
        &markdown_to_html(head),
        &charts,
        &markdown_to_html(rest),
    )
}

/// The page: `head`, the charts, then `rest`.
fn page(title: &str, head: &str, charts: &[Value], rest: &str) -> String {
    let mut divs = String::new();
    for c in charts {
        let _ = writeln!(
            divs,
            "<div class=\"chart\" id=\"{}\"></div>",
            c["id"].as_str().unwrap_or("")
        );
    }
    // `</` cannot occur inside the script: JSON strings escape '/' here.
    let data = serde_json::to_string(charts)
        .unwrap_or_else(|_| "[]".into())
        .replace("</", "<\\/");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n\
<title>{}</title>\n<style>{UPLOT_CSS}</style>\n\
<style>body{{font-family:sans-serif;max-width:75em;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:.5em 0}}td{{border:1px solid #ccc;padding:.2em .6em}}tr:first-child td{{font-weight:bold;background:#f4f4f4}}code{{background:#f4f4f4}}.chart{{margin:1.5em 0}}</style>\n\
<script>{UPLOT_JS}</script>\n</head>\n<body>\n{head}<h2>Charts</h2>\n{divs}{rest}\
<p>Charts: uPlot (MIT), bundled in this file.</p>\n<script>const CHARTS = {data};\n{DRAW_JS}</script>\n</body></html>\n",
        escape(title)
    )
}

fn markdown_to_html(md: &str) -> String {
    let mut body = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") || line.starts_with("|--") {
                continue;
            }
            if !in_table {
                body.push_str("<table>\n");
                in_table = true;
            }
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            body.push_str("<tr>");
            for c in inner.split('|') {
                let _ = write!(body, "<td>{}</td>", inline(c.trim()));
            }
            body.push_str("</tr>\n");
            continue;
        }
        if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", inline(h));
        } else if let Some(li) = line.strip_prefix("- ") {
            let _ = writeln!(body, "<p>• {}</p>", inline(li));
        } else if !line.trim().is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    body
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `**bold**` and `` `code` `` of our own Markdown.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let escaped = escape(s);
    let mut bold = false;
    let mut code = false;
    let mut rest = escaped.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_stay_in_their_columns() {
        let html = markdown_to_html("| a | | c |\n|---|---|---|\n| 1 | | 3 |\n");
        assert!(
            html.contains("<tr><td>1</td><td></td><td>3</td></tr>"),
            "{html}"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_the_network() {
        let s = Summary::default();
        let html = summary(&s);
        assert!(html.contains("default-src 'none'"));
        let re_src = ["src=\"http", "href=\"http", "src='http", "href='http"];
        for r in re_src {
            assert!(!html.contains(r), "{r}");
        }
        assert!(html.contains("var uPlot="));
    }
}
