//! Exact money: hundredths in an `i64`, parsed from the decimal text of a
//! JSON number. No floating point ever touches an amount.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::error::{ErrorKey, RuleError};

/// A non-negative amount in hundredths (of a currency unit or a bonus point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

/// Read back only within the bounds every constructor keeps: a dump line
/// or a stored record with a negative or overflowing amount does not read
/// (an import once credited `i64::MAX` bonuses).
impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let hundredths = i64::deserialize(d)?;
        Amount::from_hundredths(hundredths).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{hundredths} is not an amount in hundredths (0 to {})",
                Amount::MAX.0
            ))
        })
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    /// A billion units: far above any purchase or balance, far below overflow
    /// even when multiplied by a percentage in basis points.
    pub const MAX: Amount = Amount(100_000_000_000);

    /// The largest total a card can show (issue 27): 2^53 − 1 hundredths,
    /// the largest integer a JSON number — a double, as clients parse it —
    /// holds exactly. A total adds amounts of at most [`Amount::MAX`] each,
    /// so it may pass `MAX`; it is never clamped to a number the ledger
    /// does not hold (a credit that would take a card past it is refused).
    pub const TOTAL_MAX: Amount = Amount((1 << 53) - 1);

    /// The sum of `amounts` as a total (see [`Amount::TOTAL_MAX`]); `None`
    /// past it.
    pub fn total(amounts: impl IntoIterator<Item = Amount>) -> Option<Amount> {
        amounts
            .into_iter()
            .try_fold(0i64, |sum, a| sum.checked_add(a.0))
            .filter(|h| *h <= Self::TOTAL_MAX.0)
            .map(Amount)
    }

    pub fn from_hundredths(h: i64) -> Option<Amount> {
        (0..=Self::MAX.0).contains(&h).then_some(Amount(h))
    }

    /// For `skip_serializing_if`: stored records leave zeros out.
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn hundredths(self) -> i64 {
        self.0
    }

    /// Parses `123`, `123.4`, `123.45` (what a JSON number's text looks
    /// like); more than two decimals, a sign, an exponent, or more than
    /// [`Amount::MAX`] → `InvalidAmount`.
    pub fn parse(raw: &str) -> Result<Amount, RuleError> {
        let invalid = || {
            RuleError::new(
                ErrorKey::InvalidAmount,
                format!("{raw:?} is not an amount: a non-negative number with at most 2 decimals"),
            )
        };
        let raw_trimmed = raw.trim();
        let (int, frac) = raw_trimmed.split_once('.').unwrap_or((raw_trimmed, ""));
        if int.is_empty()
            || frac.len() > 2
            || (raw_trimmed.contains('.') && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let over = || {
            RuleError::new(
                ErrorKey::InvalidAmount,
                format!("{raw:?} is above the largest amount, {}", Self::MAX.0 / 100),
            )
        };
        if int.trim_start_matches('0').len() > 12 {
            return Err(over());
        }
        let int: i64 = int.parse().map_err(|_| invalid())?;
        let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| invalid())?;
        int.checked_mul(100)
            .and_then(|h| h.checked_add(frac))
            .and_then(Amount::from_hundredths)
            .ok_or_else(over)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_add(other.0)
            .and_then(Amount::from_hundredths)
    }

    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount((self.0 - other.0).max(0))
    }

    /// `self × percent / 100`, rounded down to the hundredth; `percent` is
    /// itself in hundredths of a percent (basis points: 5% = 500).
    pub fn percent_bp(self, basis_points: i64) -> Amount {
        Amount((i128::from(self.0) * i128::from(basis_points) / 10_000) as i64)
    }

    /// `self × num / den`, rounded down (proportional refunds).
    pub fn ratio(self, num: Amount, den: Amount) -> Amount {
        if den.0 == 0 {
            return Amount::ZERO;
        }
        Amount((i128::from(self.0) * i128::from(num.0) / i128::from(den.0)) as i64)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_at_most_two_decimals() {
        assert_eq!(Amount::parse("123").unwrap().hundredths(), 12300);
        assert_eq!(Amount::parse("123.4").unwrap().hundredths(), 12340);
        assert_eq!(Amount::parse("0.05").unwrap().hundredths(), 5);
        for bad in [
            "",
            "-1",
            "1.234",
            "1.",
            ".5",
            "1e5",
            "NaN",
            "inf",
            "1,5",
            "+1",
            "1000000000.01",
            "99999999999999",
        ] {
            assert_eq!(
                Amount::parse(bad).unwrap_err().key,
                ErrorKey::InvalidAmount,
                "{bad:?}"
            );
        }
        assert_eq!(Amount::parse("1000000000").unwrap(), Amount::MAX);
    }

    #[test]
    fn an_amount_over_the_cap_says_the_cap() {
        for over in ["1000000000.01", "99999999999999", "1000000000000000000000"] {
            let message = Amount::parse(over).unwrap_err().message;
            assert!(
                message.contains("above the largest amount, 1000000000"),
                "{over}: {message}"
            );
        }
        assert!(!Amount::parse("1.234")
            .unwrap_err()
            .message
            .contains("largest"));
    }

    #[test]
    fn totals_pass_the_input_cap_up_to_what_json_states_exactly() {
        assert_eq!(
            Amount::total([Amount::MAX, Amount::MAX]).map(Amount::hundredths),
            Some(2 * Amount::MAX.hundredths())
        );
        assert_eq!(Amount::total([Amount::TOTAL_MAX]), Some(Amount::TOTAL_MAX));
        assert_eq!(Amount::total([Amount::TOTAL_MAX, Amount(1)]), None);
        // 2^53 − 1 hundredths print as the exact decimal.
        assert_eq!(Amount::TOTAL_MAX.to_string(), "90071992547409.91");
    }

    #[test]
    fn percentages_round_down_to_the_hundredth() {
        let a = Amount::parse("99.99").unwrap();
        assert_eq!(a.percent_bp(500).to_string(), "4.99");
        assert_eq!(Amount::MAX.percent_bp(10_000), Amount::MAX);
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(h in 0i64..=100_000_000_000) {
            let a = Amount::from_hundredths(h).unwrap();
            prop_assert_eq!(Amount::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn parse_never_panics(s in ".{0,30}") {
            let _ = Amount::parse(&s);
        }
    }
}
