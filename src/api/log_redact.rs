//! What of a request may reach the log. Logs are kept longer and read by
//! more people than the store: no secret (passwords, tokens) and no
//! personal data (names, e-mails, birth dates, mobile numbers) go there,
//! from bodies, query strings, paths or echoed input alike.

use serde_json::Value;

/// Field and parameter names (lower case, any spelling containing them)
/// whose values are secrets.
const SECRET: [&str; 5] = ["password", "secret", "token", "authorization", "api_key"];
/// ... or personal data (docs/api.md §5: the contact's fields).
const PERSONAL: [&str; 7] = [
    "name", "email", "birth", "mobile", "phone", "gender", "city",
];

fn is_masked(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET.iter().chain(&PERSONAL).any(|m| key.contains(m))
}

/// A JSON body (request or response) with secrets and personal fields
/// masked; anything else only by its size.
pub fn body(bytes: &[u8]) -> String {
    fn mask(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    // Whatever its type: a secret or a name sent as a list
                    // or an object (a caller's mistake, refused by the API
                    // but logged first) is no less one (found by review).
                    if is_masked(k) {
                        *v = Value::String("***".into());
                    } else {
                        mask(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mask),
            Value::String(s) => *s = digits(s),
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            mask(&mut v);
            v.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", bytes.len()),
    }
}

/// A query string with the values of secret and personal parameters
/// masked, and long digit runs (mobile numbers) elsewhere too.
pub fn query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_masked(&decoded(k)) => format!("{k}=***"),
            Some((k, v)) => format!("{k}={}", digits(v)),
            None => digits(pair),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A path (or any text a caller sent) with its long digit runs masked.
pub fn path(path: &str) -> String {
    digits(path)
}

/// A parameter name as the caller may have escaped it (`pass%77ord`).
fn decoded(key: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("{key}="))
        .ok()
        .and_then(|pairs| pairs.into_iter().next())
        .map_or_else(|| key.to_owned(), |(k, _)| k)
}

/// Runs of 7 or more digits (a mobile number, a card number) keep only
/// their last 4: enough to tell requests apart, not to call anyone.
fn digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.extend(std::iter::repeat_n('*', run.len() - 4));
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_lose_secrets_and_personal_data() {
        let out = body(
            br#"{"Login":"a","Password":"hunter2","Nested":[{"api_token":"t"}],
                "Name":"Ann Lee","Email":"ann@example.com","BirthDate":"1990-01-02",
                "MobileNumber":"79161234567","Note":"call 79161234567"}"#,
        );
        for leaked in [
            "hunter2",
            "\"t\"",
            "Ann Lee",
            "ann@example.com",
            "1990-01-02",
            "7916123",
        ] {
            assert!(!out.contains(leaked), "{leaked}: {out}");
        }
        assert!(out.contains("\"Login\":\"a\""), "{out}");
        assert!(out.contains("*******4567"), "{out}");
    }

    #[test]
    fn secrets_and_personal_data_sent_as_lists_or_objects_are_masked_whole() {
        let out = body(
            br#"{"Password":["hunter2"],"Name":{"First":"Ann","Last":"Lee"},
                "Email":[{"Address":"ann@example.com"}],"Number":"123"}"#,
        );
        for leaked in ["hunter2", "Ann", "Lee", "ann@example.com"] {
            assert!(!out.contains(leaked), "{leaked}: {out}");
        }
        assert!(out.contains("\"Number\":\"123\""), "{out}");
    }

    #[test]
    fn query_strings_lose_secrets_and_personal_data() {
        let out =
            query("password=hunter2&API_TOKEN=lt1_x&pass%77ord=p2&name=Ann&n=79161234567&limit=10");
        for leaked in ["hunter2", "lt1_x", "p2", "Ann", "7916123"] {
            assert!(!out.contains(leaked), "{leaked}: {out}");
        }
        assert!(out.contains("limit=10"), "{out}");
    }

    #[test]
    fn paths_keep_only_the_last_digits_of_long_numbers() {
        assert_eq!(
            path("/api/card/balance/by/phone/79161234567"),
            "/api/card/balance/by/phone/*******4567"
        );
        assert_eq!(
            path("/api/card/history/123?limit=50"),
            "/api/card/history/123?limit=50"
        );
    }
}
