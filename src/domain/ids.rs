//! Identifiers that arrive from requests. Each is parsed once at the edge;
//! holding one means it is well-formed (docs/api.md §1.3).

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::error::{ErrorKey, RuleError};

/// Hard bounds that hold whatever pattern is configured: card numbers end up
/// inside store keys, so they stay short and alphanumeric.
const CARD_NUMBER_MAX_LEN: usize = 64;

/// A card number that matched the configured pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For values read back from the store, which were parsed on the way in.
    pub fn from_trusted(raw: String) -> Self {
        CardNumber(raw)
    }
}

/// Ordered maps keyed by card number are searched by its text (the derived
/// order is the text's, so the two agree).
impl std::borrow::Borrow<str> for CardNumber {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configurable card-number pattern (default: 6–19 digits).
#[derive(Debug, Clone)]
pub struct CardNumberFormat {
    pattern: Regex,
}

impl CardNumberFormat {
    pub const DEFAULT_PATTERN: &'static str = "^[0-9]{6,19}$";

    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Ok(CardNumberFormat {
            pattern: Regex::new(&Self::anchored_pattern(pattern))?,
        })
    }

    /// The configured pattern as it is matched: anchored whatever is
    /// configured, as a pattern that matches a substring would let garbage
    /// around a valid number through. The default stays as it reads.
    pub fn anchored_pattern(pattern: &str) -> String {
        if pattern == Self::DEFAULT_PATTERN {
            return pattern.to_owned();
        }
        format!(
            "^(?:{})$",
            pattern.trim_start_matches('^').trim_end_matches('$')
        )
    }

    pub fn parse(&self, raw: &str) -> Result<CardNumber, RuleError> {
        let well_formed = !raw.is_empty()
            && raw.len() <= CARD_NUMBER_MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_alphanumeric())
            && self.pattern.is_match(raw);
        if well_formed {
            Ok(CardNumber(raw.to_owned()))
        } else {
            Err(RuleError::new(
                ErrorKey::InvalidCardNumber,
                format!("card number {:?} has a wrong format", shorten(raw)),
            ))
        }
    }
}

impl Default for CardNumberFormat {
    fn default() -> Self {
        CardNumberFormat::new(Self::DEFAULT_PATTERN).expect("the default pattern compiles")
    }
}

/// A mobile number normalized to its 10–15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MobileNumber(String);

impl MobileNumber {
    /// Strips spaces, `-`, `(`, `)` and one leading `+`; the rest must be
    /// 10–15 ASCII digits.
    pub fn parse(raw: &str) -> Result<MobileNumber, RuleError> {
        let invalid = || {
            RuleError::new(
                ErrorKey::InvalidMobileNumber,
                format!("mobile number {:?} has a wrong format", shorten(raw)),
            )
        };
        if raw.len() > 64 {
            return Err(invalid());
        }
        let trimmed = raw.trim_matches(' ');
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(16);
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '(' | ')' => {}
                _ => return Err(invalid()),
            }
        }
        if (10..=15).contains(&digits.len()) {
            Ok(MobileNumber(digits))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_trusted(raw: String) -> Self {
        MobileNumber(raw)
    }
}

impl fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact code: 1–64 characters of `A-Z a-z 0-9 _ -`, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactCode(String);

impl std::borrow::Borrow<str> for ContactCode {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl ContactCode {
    pub fn parse(raw: &str) -> Result<ContactCode, RuleError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(ContactCode(raw.to_owned()))
        } else {
            Err(RuleError::new(
                ErrorKey::InvalidContactCode,
                format!("contact code {:?} has a wrong format", shorten(raw)),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_trusted(raw: String) -> Self {
        ContactCode(raw)
    }
}

impl fmt::Display for ContactCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Echoing a rejected value helps an integrator, but a megabyte of it in an
/// error message does not.
fn shorten(raw: &str) -> String {
    const MAX: usize = 40;
    if raw.chars().count() <= MAX {
        raw.to_owned()
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn card_numbers_of_6_to_19_digits_parse() {
        let f = CardNumberFormat::default();
        for ok in ["123456", "1234567890123456789", "0000001"] {
            assert_eq!(f.parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "12345",
            "12345678901234567890",
            "12345a",
            " 123456",
            "123456 ",
            "１２３４５６",
            "-123456",
        ] {
            assert_eq!(
                f.parse(bad).unwrap_err().key,
                ErrorKey::InvalidCardNumber,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_configured_pattern_is_anchored() {
        let f = CardNumberFormat::new("77[0-9]{4}").unwrap();
        assert!(f.parse("771234").is_ok());
        assert!(f.parse("1771234").is_err());
        assert!(f.parse("7712345").is_err());
    }

    #[test]
    fn mobile_numbers_are_normalized() {
        let cases = [
            ("+7 (916) 123-45-67", "79161234567"),
            ("79161234567", "79161234567"),
            ("8-916-123-45-67", "89161234567"),
            ("(916)1234567", "9161234567"),
            ("+123456789012345", "123456789012345"),
        ];
        for (raw, want) in cases {
            assert_eq!(MobileNumber::parse(raw).unwrap().as_str(), want, "{raw:?}");
        }
        for bad in [
            "",
            "123456789",
            "1234567890123456",
            "++79161234567",
            "7916123456+7",
            "7916 123 45 6a",
            "7916.123.45.67",
            "+",
        ] {
            assert_eq!(
                MobileNumber::parse(bad).unwrap_err().key,
                ErrorKey::InvalidMobileNumber,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn contact_codes() {
        assert!(ContactCode::parse("C-001_ab").is_ok());
        assert!(ContactCode::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "ä", &"a".repeat(65)] {
            assert_eq!(
                ContactCode::parse(bad).unwrap_err().key,
                ErrorKey::InvalidContactCode
            );
        }
    }

    #[test]
    fn long_garbage_is_shortened_in_messages() {
        let err = MobileNumber::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(err.message.len() < 100);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,80}") {
            let _ = CardNumberFormat::default().parse(&s);
            let _ = MobileNumber::parse(&s);
            let _ = ContactCode::parse(&s);
        }

        #[test]
        fn any_formatting_of_a_phone_normalizes_to_its_digits(
            digits in "[0-9]{10,15}",
            seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just("("), Just(")")], 16),
            plus in any::<bool>(),
        ) {
            let mut raw = String::new();
            if plus { raw.push('+'); }
            for (i, d) in digits.chars().enumerate() {
                raw.push_str(seps[i]);
                raw.push(d);
            }
            let parsed = MobileNumber::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), digits.as_str());
        }

        #[test]
        fn valid_card_numbers_round_trip(n in "[0-9]{6,19}") {
            let parsed = CardNumberFormat::default().parse(&n).unwrap();
            prop_assert_eq!(parsed.as_str(), n.as_str());
        }
    }
}
