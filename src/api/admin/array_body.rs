//! A bulk body sent as one JSON array (the format of old). It is read whole
//! (within `http.admin_max_body_bytes`), but never parsed whole: a parsed
//! `Value` costs tens of times its text (a 30 MiB array peaked at 1.9 GiB),
//! so only the elements' places are found up front, and each element is
//! parsed when its turn comes.

use std::ops::Range;

use serde::de::IgnoredAny;
use serde_json::Value;

use crate::json_text;

pub const NOT_AN_ARRAY: &str = "the body must be a JSON array (or application/x-ndjson lines)";

/// The body and where its elements are.
pub struct ArrayBody {
    body: actix_web::web::Bytes,
    elements: std::vec::IntoIter<Range<usize>>,
    next_index: u64,
}

impl ArrayBody {
    /// Checks the whole body is one JSON array, without building it.
    pub fn new(body: actix_web::web::Bytes) -> Result<ArrayBody, String> {
        let elements = elements(&body)?;
        Ok(ArrayBody {
            body,
            elements: elements.into_iter(),
            next_index: 0,
        })
    }

    /// The next element (1-based index) as a `Value`.
    pub fn next(&mut self) -> Option<(u64, Value)> {
        let range = self.elements.next()?;
        self.next_index += 1;
        // Checked as JSON when the places were found: this cannot fail.
        let value = serde_json::from_slice(&self.body[range]).unwrap_or(Value::Null);
        Some((self.next_index, value))
    }
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// The byte ranges of the array's elements.
fn elements(body: &[u8]) -> Result<Vec<Range<usize>>, String> {
    if let Some(problem) = json_text::encoding_problem(body) {
        return Err(problem);
    }
    let mut at = skip_whitespace(body, 0);
    if body.get(at) != Some(&b'[') {
        // Valid JSON of another kind, or not JSON at all: say which.
        return Err(match json_text::parse(body) {
            Ok(_) => NOT_AN_ARRAY.to_owned(),
            Err(e) => e,
        });
    }
    at = skip_whitespace(body, at + 1);
    let mut found = Vec::new();
    if body.get(at) == Some(&b']') {
        return the_end(body, at + 1, found);
    }
    loop {
        let mut values =
            serde_json::Deserializer::from_slice(&body[at..]).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(format!("not valid JSON: {e} (element {})", found.len() + 1))
            }
            None => return Err("not valid JSON: the array is not closed".into()),
        }
        let end = at + values.byte_offset();
        found.push(at..end);
        at = skip_whitespace(body, end);
        match body.get(at) {
            Some(b',') => at = skip_whitespace(body, at + 1),
            Some(b']') => return the_end(body, at + 1, found),
            _ => {
                return Err(format!(
                    "not valid JSON: expected ',' or ']' after element {}",
                    found.len()
                ))
            }
        }
    }
}

fn the_end(body: &[u8], at: usize, found: Vec<Range<usize>>) -> Result<Vec<Range<usize>>, String> {
    if skip_whitespace(body, at) == body.len() {
        Ok(found)
    } else {
        Err("not valid JSON: trailing characters after the array".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Value>, String> {
        let mut body = ArrayBody::new(actix_web::web::Bytes::copy_from_slice(text.as_bytes()))?;
        let mut out = Vec::new();
        while let Some((i, v)) = body.next() {
            assert_eq!(i as usize, out.len() + 1);
            out.push(v);
        }
        Ok(out)
    }

    #[test]
    fn elements_of_every_kind_in_order() {
        let got = all(r#" [ {"Number":"1","A":[1,{"b":"]"}]} ,2,"x",null , [] ] "#).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[0]["A"][1]["b"], "]");
        assert_eq!(got[1], serde_json::json!(2));
        assert!(all("[]").unwrap().is_empty());
    }

    #[test]
    fn what_is_not_one_array_is_refused() {
        for bad in ["{}", "[1,", "[1 2]", "[1,]", "[1] x", "", "[{\"a\":}]"] {
            assert!(all(bad).is_err(), "{bad:?}");
        }
        assert_eq!(all("{}").unwrap_err(), NOT_AN_ARRAY);
    }
}
