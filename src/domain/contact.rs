//! Contacts (customers) and the configurable "personal data is sufficient"
//! rule that gates activation (docs/api.md §4).

use serde::{Deserialize, Serialize};
use time::{macros::format_description, Date};

use super::error::{ErrorKey, RuleError};
use super::ids::{ContactCode, MobileNumber};

/// Longest free-text field we keep; longer input is refused, not truncated.
pub const MAX_TEXT_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub code: ContactCode,
    pub name: String,
    pub mobile: Option<MobileNumber>,
    pub email: String,
    /// `YYYY-MM-DD` or empty.
    pub birth_date: String,
    pub gender: String,
    pub city: String,
    /// The owner string under which this contact holds its mobile number's
    /// index entry: releasing exactly it never frees a claim that a later
    /// attempt for the same contact made.
    #[serde(default)]
    pub mobile_claim: Option<String>,
}

/// Contact fields that `activation.required_fields` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactField {
    Name,
    MobileNumber,
    Email,
    BirthDate,
    Gender,
    City,
}

impl ContactField {
    pub const ALL: [ContactField; 6] = [
        ContactField::Name,
        ContactField::MobileNumber,
        ContactField::Email,
        ContactField::BirthDate,
        ContactField::Gender,
        ContactField::City,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            ContactField::Name => "Name",
            ContactField::MobileNumber => "MobileNumber",
            ContactField::Email => "Email",
            ContactField::BirthDate => "BirthDate",
            ContactField::Gender => "Gender",
            ContactField::City => "City",
        }
    }

    /// Case-insensitive, like every parameter name of the API.
    pub fn parse(raw: &str) -> Option<ContactField> {
        ContactField::ALL
            .into_iter()
            .find(|f| f.wire_name().eq_ignore_ascii_case(raw.trim()))
    }
}

impl Contact {
    pub fn new(code: ContactCode) -> Contact {
        Contact {
            code,
            name: String::new(),
            mobile: None,
            email: String::new(),
            birth_date: String::new(),
            gender: String::new(),
            city: String::new(),
            mobile_claim: None,
        }
    }

    fn field(&self, field: ContactField) -> &str {
        match field {
            ContactField::Name => &self.name,
            ContactField::MobileNumber => self.mobile.as_ref().map_or("", |m| m.as_str()),
            ContactField::Email => &self.email,
            ContactField::BirthDate => &self.birth_date,
            ContactField::Gender => &self.gender,
            ContactField::City => &self.city,
        }
    }

    /// Is the personal data sufficient to activate a card bound to this
    /// contact? Whitespace-only values do not count as filled in.
    pub fn is_sufficient(&self, required: &[ContactField]) -> bool {
        required.iter().all(|f| !self.field(*f).trim().is_empty())
    }

    pub fn apply(&mut self, patch: ContactPatch) {
        if let Some(v) = patch.name {
            self.name = v;
        }
        if let Some(v) = patch.mobile {
            self.mobile = Some(v);
        }
        if let Some(v) = patch.email {
            self.email = v;
        }
        if let Some(v) = patch.birth_date {
            self.birth_date = v;
        }
        if let Some(v) = patch.gender {
            self.gender = v;
        }
        if let Some(v) = patch.city {
            self.city = v;
        }
    }
}

/// A create-or-update of a contact: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactPatch {
    pub name: Option<String>,
    pub mobile: Option<MobileNumber>,
    pub email: Option<String>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
}

/// A free-text contact field: at most [`MAX_TEXT_LEN`] characters, no
/// control characters.
pub fn parse_text(field: &str, raw: &str) -> Result<String, RuleError> {
    if raw.chars().count() > MAX_TEXT_LEN || raw.chars().any(char::is_control) {
        return Err(RuleError::new(
            ErrorKey::InvalidParameter,
            format!("{field} must be at most {MAX_TEXT_LEN} characters without control characters"),
        ));
    }
    Ok(raw.trim().to_owned())
}

/// A `YYYY-MM-DD` calendar date, or empty to clear it.
pub fn parse_date(field: &str, raw: &str) -> Result<String, RuleError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(String::new());
    }
    Date::parse(raw, format_description!("[year]-[month]-[day]"))
        .map(|_| raw.to_owned())
        .map_err(|_| {
            RuleError::new(
                ErrorKey::InvalidParameter,
                format!("{field} must be a date YYYY-MM-DD"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact::new(ContactCode::parse("c1").unwrap())
    }

    #[test]
    fn sufficiency_follows_the_configured_fields() {
        let required = [ContactField::Name, ContactField::BirthDate];
        let mut c = contact();
        assert!(!c.is_sufficient(&required));
        c.name = "Ann".into();
        assert!(!c.is_sufficient(&required));
        c.birth_date = "1990-01-31".into();
        assert!(c.is_sufficient(&required));
        c.name = "   ".into();
        assert!(!c.is_sufficient(&required));
        assert!(contact().is_sufficient(&[]));
    }

    #[test]
    fn field_names_parse_case_insensitively() {
        assert_eq!(
            ContactField::parse("birthdate"),
            Some(ContactField::BirthDate)
        );
        assert_eq!(ContactField::parse("Code"), None);
    }

    #[test]
    fn dates_are_checked() {
        assert_eq!(parse_date("BirthDate", "1990-02-28").unwrap(), "1990-02-28");
        assert_eq!(parse_date("BirthDate", "").unwrap(), "");
        for bad in ["1990-02-30", "1990-2-3", "31.01.1990", "1990-01-01T00:00"] {
            assert_eq!(
                parse_date("BirthDate", bad).unwrap_err().key,
                ErrorKey::InvalidParameter
            );
        }
    }

    #[test]
    fn text_is_bounded() {
        assert!(parse_text("Name", &"a".repeat(MAX_TEXT_LEN)).is_ok());
        assert!(parse_text("Name", &"a".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(parse_text("Name", "a\u{0}b").is_err());
    }
}
