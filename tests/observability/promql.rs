//! The vector selectors of a PromQL expression (`name{matchers}`), so that
//! each can be queried on its own: an expression such as `(x or vector(0))`
//! or `absent(x)` returns a series even when `x` names a metric or label
//! that does not exist, which is exactly the mistake this run must catch.

const KEYWORDS_WITH_LABEL_LIST: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Operators, and the aggregations (which may be followed by `by (...)`
/// rather than by their parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

pub fn selectors(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'[' => i = skip_to(b, i, b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                // A selector without a name: {__name__="..."}.
                let end = skip_to(b, i, b'}');
                push(&mut out, &expr[i..end]);
                i = end;
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let next = b.get(j).copied();
                let lower = word.to_ascii_lowercase();
                if KEYWORDS_WITH_LABEL_LIST.contains(&lower.as_str()) {
                    if next == Some(b'(') {
                        i = skip_to(b, j, b')');
                    }
                } else if KEYWORDS.contains(&lower.as_str()) || next == Some(b'(') {
                    // An operator, or a function / aggregation name.
                } else if next == Some(b'{') {
                    let end = skip_to(b, j, b'}');
                    push(&mut out, &format!("{word}{}", &expr[j..end]));
                    i = end;
                } else {
                    push(&mut out, word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn push(out: &mut Vec<String>, s: &str) {
    if !out.iter().any(|o| o == s) {
        out.push(s.to_owned());
    }
}

fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != quote {
        if b[i] == b'\\' && quote != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Index just past the `close` that ends the group opened at `start`,
/// skipping strings.
fn skip_to(b: &[u8], start: usize, close: u8) -> usize {
    let open = b[start];
    let mut depth = 0;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The extractor checked on the shapes the shipped rules and panels use;
/// run before anything is started.
pub fn self_check() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"sum by (route, method) (rate(loyalty_http_requests_total[$__rate_interval]))"#,
            &["loyalty_http_requests_total"],
        ),
        (
            r#"(sum(rate(a_total{route=~"/api/card/(issue|x)",status=~"5.."}[5m])) or vector(0)) / sum(rate(a_total{route=~"/b/.+"}[5m]))"#,
            &[
                r#"a_total{route=~"/api/card/(issue|x)",status=~"5.."}"#,
                r#"a_total{route=~"/b/.+"}"#,
            ],
        ),
        (
            "x:ratio_rate1h > on (class) (14.4 * (1 - y:objective)) and on(class) z offset 5m",
            &["x:ratio_rate1h", "y:objective", "z"],
        ),
        (
            r#"absent(up{job="loyalty"}) or {__name__="w", a="}"}"#,
            &[r#"up{job="loyalty"}"#, r#"{__name__="w", a="}"}"#],
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 0.1",
            &["h_bucket"],
        ),
    ];
    for (expr, want) in cases {
        let got = selectors(expr);
        assert_eq!(got, *want, "selectors of {expr}");
    }
}
