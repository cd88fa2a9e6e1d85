//! Two serialised forms for the small enums and timestamps of stored
//! records: by name in human-readable formats (JSON: the export, the change
//! stream, records stored before), by number in the compact encoding Redis
//! keeps (src/store/codec.rs), where every byte is RAM times ten million
//! cards. A format says which it is (`is_human_readable`).

use std::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// An enum with a stable small number and a stable JSON name per variant.
pub(crate) trait Coded: Sized + Copy + 'static {
    const WHAT: &'static str;
    fn to_code(self) -> u8;
    fn of_code(code: u8) -> Option<Self>;
    fn json_name(self) -> &'static str;
    fn of_json_name(name: &str) -> Option<Self>;
}

pub(crate) fn serialize<T: Coded, S: Serializer>(value: T, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(value.json_name())
    } else {
        s.serialize_u8(value.to_code())
    }
}

pub(crate) fn deserialize<'de, T: Coded, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    if d.is_human_readable() {
        let name = Cow::<str>::deserialize(d)?;
        T::of_json_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown {} {name:?}", T::WHAT)))
    } else {
        let code = u8::deserialize(d)?;
        T::of_code(code).ok_or_else(|| D::Error::custom(format!("unknown {} {code}", T::WHAT)))
    }
}

/// `Serialize` and `Deserialize` through `Coded`.
macro_rules! coded_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::domain::compact::serialize(*self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::domain::compact::deserialize(d)
            }
        }
    };
}
pub(crate) use coded_serde;

/// A timestamp: RFC 3339 text in human-readable formats, `[seconds since
/// the epoch, nanoseconds]` in the compact one. Read back in UTC (every
/// stored timestamp is written in UTC).
pub mod timestamp {
    use super::*;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            time::serde::rfc3339::serialize(at, s)
        } else {
            (at.unix_timestamp(), at.nanosecond()).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        if d.is_human_readable() {
            time::serde::rfc3339::deserialize(d)
        } else {
            let (secs, nanos) = <(i64, u32)>::deserialize(d)?;
            let at = OffsetDateTime::from_unix_timestamp(secs).map_err(D::Error::custom)?;
            at.replace_nanosecond(nanos).map_err(D::Error::custom)
        }
    }
}
