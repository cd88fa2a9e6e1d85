//! Request parameters with case-insensitive names, from a query string or a
//! JSON object body. Codes and numbers may come as strings or JSON integers.

use std::collections::HashMap;

use serde_json::Value;

use super::error::ApiError;
use crate::domain::{Amount, ErrorKey};

/// More parameters than any method takes, by far. A crafted request with
/// thousands is refused before any is looked at.
pub const MAX_PARAMS: usize = 256;

#[derive(Debug, Default, Clone)]
pub struct Params {
    /// Lower-cased name → value; the first occurrence of a name wins. A map,
    /// not a list searched per name: matching stays linear in the request.
    entries: HashMap<String, Value>,
}

fn too_many(n: usize) -> ApiError {
    ApiError::new(
        ErrorKey::InvalidParameter,
        format!("{n} parameters: no method takes more than {MAX_PARAMS}"),
    )
}

impl Params {
    pub fn from_query(query: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
            ApiError::new(ErrorKey::InvalidParameter, "the query string is malformed")
        })?;
        if pairs.len() > MAX_PARAMS {
            return Err(too_many(pairs.len()));
        }
        let mut params = Params::default();
        for (name, value) in pairs {
            params.push(name, Value::String(value));
        }
        Ok(params)
    }

    /// An empty body is an empty object; anything else must be a JSON object.
    pub fn from_json(body: &[u8]) -> Result<Params, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::default());
        }
        let value = crate::json_text::parse(body)
            .map_err(|e| ApiError::new(ErrorKey::InvalidJson, format!("the body: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::new(
                ErrorKey::InvalidJson,
                "the body must be a JSON object",
            ));
        };
        if map.len() > MAX_PARAMS {
            return Err(too_many(map.len()));
        }
        Ok(Params::from_object(map))
    }

    pub fn from_object(map: serde_json::Map<String, Value>) -> Params {
        let mut params = Params::default();
        for (name, value) in map {
            params.push(name, value);
        }
        params
    }

    /// Adds `other`'s entries whose names this one lacks.
    pub fn merge(mut self, other: Params) -> Params {
        for (name, value) in other.entries {
            self.push(name, value);
        }
        self
    }

    fn push(&mut self, name: String, value: Value) {
        self.entries
            .entry(name.to_ascii_lowercase())
            .or_insert(value);
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.entries.get(&name.to_ascii_lowercase())
    }

    /// Present means: given, not null, and not an empty string.
    pub fn is_present(&self, name: &str) -> bool {
        match self.raw(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        }
    }

    /// Fails with `RequiredParameterNotSpecified` naming every missing one.
    pub fn require(&self, names: &[&str]) -> Result<(), ApiError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.is_present(n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing_error(&missing))
        }
    }

    /// A scalar parameter as text: strings as they are, integers in decimal.
    /// Arrays, objects, booleans and fractions are a type error.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Any number of digits: the JSON text is kept as it came
            // (serde_json's arbitrary_precision), so an integer too large
            // for 64 bits is read as the digits it is, and its format
            // check names what is wrong with it.
            Some(Value::Number(n)) if is_integer(n) => Ok(Some(n.to_string())),
            Some(other) => Err(ApiError::new(
                ErrorKey::InvalidJson,
                format!(
                    "the parameter {name} must be a string or an integer, not {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A yes/no parameter: `true`/`false`, or `1`/`0` as a number or text;
    /// absent is no.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(ApiError::new(
                    ErrorKey::InvalidParameter,
                    format!("the parameter {name} must be true or false"),
                )),
            },
            Some(_) => Err(ApiError::new(
                ErrorKey::InvalidParameter,
                format!("the parameter {name} must be true or false"),
            )),
        }
    }

    /// A free-text parameter: strings only (an empty string clears a field).
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(ApiError::new(
                ErrorKey::InvalidJson,
                format!("the parameter {name} must be a string, not {}", kind(other)),
            )),
        }
    }

    /// An amount: a JSON number (or its text) with at most two decimals.
    pub fn amount(&self, name: &str) -> Result<Option<Amount>, ApiError> {
        let raw = match self.raw(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(ApiError::new(
                    ErrorKey::InvalidAmount,
                    format!("{name} must be a number, not {}", kind(other)),
                ))
            }
        };
        Amount::parse(&raw)
            .map(Some)
            .map_err(|e| ApiError::new(ErrorKey::InvalidAmount, format!("{name}: {}", e.message)))
    }

    /// An optional `YYYY-MM-DD` date.
    pub fn date(&self, name: &str) -> Result<Option<time::Date>, ApiError> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => time::Date::parse(
                s.trim(),
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map(Some)
            .map_err(|_| {
                ApiError::new(
                    ErrorKey::InvalidParameter,
                    format!("{name} must be a date YYYY-MM-DD"),
                )
            }),
        }
    }

    /// An identifier chosen by the caller (PurchaseId, RefundId,
    /// OperationId): 1–128 visible ASCII characters.
    pub fn id(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(s) if (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Some(s))
            }
            Some(_) => Err(ApiError::new(
                ErrorKey::InvalidParameter,
                format!("{name} must be 1-128 visible ASCII characters"),
            )),
        }
    }

    /// `limit` (default 50, at most 500) and `cursor` of a paged listing.
    pub fn page(&self) -> Result<(usize, Option<u64>), ApiError> {
        let limit = self.unsigned("limit")?.unwrap_or(50).clamp(1, 500) as usize;
        Ok((limit, self.cursor()?))
    }

    /// A page cursor as `NextCursor` gave it: 1–19 decimal digits (what
    /// the document's pattern says; 19 digits always fit in 64 bits).
    fn cursor(&self) -> Result<Option<u64>, ApiError> {
        let Some(s) = self.text("cursor")? else {
            return Ok(None);
        };
        let digits = (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        let invalid = || {
            ApiError::new(
                ErrorKey::InvalidParameter,
                "the parameter cursor must be 1-19 decimal digits, as NextCursor gave it",
            )
        };
        if !digits {
            return Err(invalid());
        }
        s.parse().map(Some).map_err(|_| invalid())
    }

    /// An optional non-negative integer (`limit`, `cursor`).
    pub fn unsigned(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                ApiError::new(
                    ErrorKey::InvalidParameter,
                    format!("the parameter {name} must be a non-negative integer"),
                )
            }),
        }
    }
}

pub fn missing_error(missing: &[&str]) -> ApiError {
    ApiError::new(ErrorKey::RequiredParameterNotSpecified, missing.join(", "))
}

/// An integer in JSON: digits, perhaps a minus sign; no fraction and no
/// exponent.
fn is_integer(n: &serde_json::Number) -> bool {
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number with a fraction or an exponent",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_of_parameters_are_refused_before_any_is_matched() {
        let query: String = (0..MAX_PARAMS + 1).map(|i| format!("p{i}=&")).collect();
        let e = Params::from_query(&query).unwrap_err();
        assert_eq!(e.key, ErrorKey::InvalidParameter, "{}", e.message);
        let body = format!(
            "{{{}}}",
            (0..MAX_PARAMS + 1)
                .map(|i| format!("\"p{i}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let e = Params::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(e.key, ErrorKey::InvalidParameter, "{}", e.message);
        // A repeated name is one parameter, the first one.
        let p = Params::from_query("a=1&A=2").unwrap();
        assert_eq!(p.text("a").unwrap().as_deref(), Some("1"));
    }

    #[test]
    fn names_are_case_insensitive() {
        let p = Params::from_json(br#"{"NUMBER": "123456", "mobileNumber": 79161234567}"#).unwrap();
        assert_eq!(p.text("Number").unwrap().as_deref(), Some("123456"));
        assert_eq!(
            p.text("MobileNumber").unwrap().as_deref(),
            Some("79161234567")
        );
        let q = Params::from_query("nUmBeR=42&x=%2B7").unwrap();
        assert_eq!(q.text("Number").unwrap().as_deref(), Some("42"));
        assert_eq!(q.text("X").unwrap().as_deref(), Some("+7"));
    }

    #[test]
    fn all_missing_parameters_are_named() {
        let p =
            Params::from_json(br#"{"Number": null, "Other": 1, "MobileNumber": "  "}"#).unwrap();
        let err = p.require(&["Number", "MobileNumber"]).unwrap_err();
        assert_eq!(err.key, ErrorKey::RequiredParameterNotSpecified);
        assert_eq!(err.message, "Number, MobileNumber");
    }

    #[test]
    fn wrong_types_and_bad_json() {
        let p = Params::from_json(br#"{"Number": [1], "Code": 1.5, "B": true}"#).unwrap();
        assert_eq!(p.text("Number").unwrap_err().key, ErrorKey::InvalidJson);
        assert_eq!(p.text("Code").unwrap_err().key, ErrorKey::InvalidJson);
        assert_eq!(p.text("B").unwrap_err().key, ErrorKey::InvalidJson);
        for body in [&b"{"[..], b"[1]", b"\"x\"", b"{\"a\":}", b"\xff"] {
            assert_eq!(
                Params::from_json(body).unwrap_err().key,
                ErrorKey::InvalidJson
            );
        }
        assert!(Params::from_json(b"  ").is_ok());
    }

    #[test]
    fn integers_of_any_length_are_read_as_their_digits() {
        let p =
            Params::from_json(br#"{"Number": 98765432109876543210, "N": -5, "F": 1e3}"#).unwrap();
        assert_eq!(
            p.text("Number").unwrap().as_deref(),
            Some("98765432109876543210")
        );
        assert_eq!(p.text("N").unwrap().as_deref(), Some("-5"));
        let err = p.text("F").unwrap_err();
        assert!(err.message.contains("exponent"), "{}", err.message);
    }
}
