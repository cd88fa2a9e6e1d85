//! Case-insensitive routing (docs/api.md §1): literal path segments match in any
//! case, captured segments keep their case (contact codes are
//! case-sensitive). Each route carries its template for metrics labels.

use std::sync::LazyLock;

use actix_web::http::Method as HttpMethod;

use super::routes::{table, Route};

pub struct Router {
    routes: Vec<Route>,
}

pub enum Match<'r> {
    Found(&'r Route, Vec<String>),
    /// The path exists, the method does not: the first route of the path,
    /// and the methods the path answers (for `Allow`).
    WrongMethod(&'r Route, Vec<&'r HttpMethod>),
    NotFound,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// The server's router: the route table is fixed at compile time, and
    /// the state handlers see does not hold it (its handlers take that
    /// state: holding it would tie the two modules in a cycle).
    pub fn shared() -> &'static Router {
        static ROUTER: LazyLock<Router> = LazyLock::new(Router::new);
        &ROUTER
    }

    /// Every route, in matching order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn new() -> Router {
        Router { routes: table() }
    }

    /// `path` is the raw (still percent-encoded) request path.
    pub fn find(&self, method: &HttpMethod, path: &str) -> Match<'_> {
        let trimmed = path.trim_end_matches('/');
        let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        let mut wrong_method = None;
        let mut allowed: Vec<&HttpMethod> = Vec::new();
        for r in &self.routes {
            let Some(captures) = match_segments(&r.segments, &parts) else {
                continue;
            };
            if r.methods.contains(method) {
                return Match::Found(r, captures);
            }
            wrong_method.get_or_insert(r);
            for m in r.methods {
                if !allowed.contains(&m) {
                    allowed.push(m);
                }
            }
        }
        match wrong_method {
            Some(r) => Match::WrongMethod(r, allowed),
            None => Match::NotFound,
        }
    }
}

fn match_segments(template: &[&str], parts: &[&str]) -> Option<Vec<String>> {
    if template.len() != parts.len() {
        return None;
    }
    let mut captures = Vec::new();
    for (t, p) in template.iter().zip(parts) {
        if t.starts_with('{') {
            let decoded = percent_decode(p)?;
            if decoded.is_empty() {
                return None;
            }
            captures.push(decoded);
        } else if !t.eq_ignore_ascii_case(p) {
            return None;
        }
    }
    Some(captures)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::RouteId;

    fn find(method: HttpMethod, path: &str) -> Option<(RouteId, Vec<String>)> {
        match Router::new().find(&method, path) {
            Match::Found(r, c) => Some((r.id, c)),
            _ => None,
        }
    }

    #[test]
    fn literals_match_in_any_case_and_captures_keep_theirs() {
        assert_eq!(
            find(HttpMethod::GET, "/API/Card/Issue").unwrap().0,
            RouteId::Issue
        );
        assert_eq!(
            find(HttpMethod::GET, "/api/card/balance/BY/code/AbC-1").unwrap(),
            (RouteId::BalanceByCode, vec!["AbC-1".to_owned()])
        );
        assert_eq!(
            find(HttpMethod::GET, "/api/card/balance/by/phone/%2B7%20916")
                .unwrap()
                .1,
            vec!["+7 916".to_owned()]
        );
        assert_eq!(
            find(HttpMethod::POST, "/api/card/BinTo").unwrap().0,
            RouteId::BindTo
        );
        assert_eq!(
            find(HttpMethod::GET, "/api/card/balance/by/123456/")
                .unwrap()
                .0,
            RouteId::BalanceByNumber
        );
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        let r = Router::new();
        match r.find(&HttpMethod::GET, "/api/card/block") {
            Match::WrongMethod(_, allowed) => assert_eq!(allowed, [&HttpMethod::POST]),
            _ => panic!("GET /api/card/block is a wrong method"),
        }
        match r.find(&HttpMethod::PUT, "/api/card/Issue") {
            Match::WrongMethod(_, allowed) => {
                assert_eq!(allowed, [&HttpMethod::GET, &HttpMethod::POST])
            }
            _ => panic!("PUT /api/card/issue is a wrong method"),
        }
        assert!(matches!(
            r.find(&HttpMethod::GET, "/api/card/nope"),
            Match::NotFound
        ));
        assert!(matches!(
            r.find(&HttpMethod::GET, "/api/card/balance/by/%zz"),
            Match::NotFound
        ));
    }
}
