//! Reference values of docs/api.md §3: codes on the wire are strings of digits,
//! names are English.

macro_rules! reference {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        // Stored by variant name in JSON, by code in the compact encoding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl super::compact::Coded for $name {
            const WHAT: &'static str = stringify!($name);
            fn to_code(self) -> u8 {
                self.code()
            }
            fn of_code(code: u8) -> Option<Self> {
                Self::from_code(code)
            }
            fn json_name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
            fn of_json_name(name: &str) -> Option<Self> {
                match name { $(stringify!($variant) => Some($name::$variant),)+ _ => None }
            }
        }
        super::compact::coded_serde!($name);

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn code_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($code)),+ }
            }

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Parses a code as it arrives on the wire: canonical decimal
            /// digits ("2"), never "02" or " 2".
            pub fn parse_code(raw: &str) -> Option<Self> {
                if raw.is_empty() || raw.len() > 3 || (raw.len() > 1 && raw.starts_with('0')) {
                    return None;
                }
                raw.parse::<u8>().ok().and_then(Self::from_code)
            }
        }
    };
}

reference!(
    /// Card status.
    CardStatus {
        New = 0, "New";
        Issued = 1, "Issued";
        Active = 2, "Active";
        Blocked = 3, "Blocked";
    }
);

reference!(
    /// Card category.
    Category {
        Plastic = 0, "Plastic";
        Virtual = 1, "Virtual";
    }
);

reference!(
    /// Card type.
    CardType {
        Bonus = 0, "Bonus";
        Discount = 1, "Discount";
        BonusDiscount = 2, "Bonus/Discount";
    }
);

reference!(
    /// Kind of bonus.
    BonusType {
        Cash = 0, "Cash";
        Status = 1, "Status";
    }
);

reference!(
    /// A bonus amount's state in a balance (§5.1). Held (5): reserved by an
    /// open hold (issue 24), not Active until released.
    BonusStatus {
        Active = 0, "Active";
        Inactive = 1, "Inactive";
        Burnt = 2, "Burnt";
        Frozen = 3, "Frozen";
        NearestExpiring = 4, "Nearest expiring";
        Held = 5, "Held";
    }
);

reference!(
    /// Why a card was blocked.
    BlockReason {
        Lost = 0, "Card lost";
        Unwanted = 1, "Unwanted-customers list";
        Blacklist = 2, "Blacklist";
        Refusal = 3, "Refusal to use";
        Replacement = 4, "Card replacement";
    }
);

reference!(
    /// Why a card is unblocked.
    UnblockReason {
        Found = 0, "Card found";
        ExitUnwanted = 1, "Exit from unwanted-customers list";
        ExitBlacklist = 2, "Exit from blacklist";
        Restore = 3, "Restore after refusal to use";
    }
);

impl UnblockReason {
    /// The block reason this unblock reason answers (0↔0, 1↔1, 2↔2, 3↔3).
    pub fn answers(self) -> BlockReason {
        match self {
            UnblockReason::Found => BlockReason::Lost,
            UnblockReason::ExitUnwanted => BlockReason::Unwanted,
            UnblockReason::ExitBlacklist => BlockReason::Blacklist,
            UnblockReason::Restore => BlockReason::Refusal,
        }
    }
}

/// The callers' roles of docs/api.md §2 (by `as_str` in JSON, by index in the
/// compact encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    // The numbers are the compact encoding's: never change or reuse one.
    Pos = 0,
    Client = 1,
    CcOperator = 2,
    Marketer = 3,
    SeniorEmployee = 4,
    Director = 5,
    Administrator = 6,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Pos,
        Role::Client,
        Role::CcOperator,
        Role::Marketer,
        Role::SeniorEmployee,
        Role::Director,
        Role::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pos => "pos",
            Role::Client => "client",
            Role::CcOperator => "cc_operator",
            Role::Marketer => "marketer",
            Role::SeniorEmployee => "senior_employee",
            Role::Director => "director",
            Role::Administrator => "administrator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

impl super::compact::Coded for Role {
    const WHAT: &'static str = "role";
    fn to_code(self) -> u8 {
        self as u8
    }
    fn of_code(code: u8) -> Option<Self> {
        Role::ALL.into_iter().find(|r| *r as u8 == code)
    }
    fn json_name(self) -> &'static str {
        self.as_str()
    }
    fn of_json_name(name: &str) -> Option<Self> {
        Role::parse(name)
    }
}
super::compact::coded_serde!(Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in CardStatus::ALL {
            assert_eq!(CardStatus::parse_code(s.code_str()), Some(*s));
        }
        for r in BlockReason::ALL {
            assert_eq!(BlockReason::from_code(r.code()), Some(*r));
        }
    }

    #[test]
    fn non_canonical_codes_are_rejected() {
        for raw in ["", "02", " 2", "2 ", "-1", "5", "256", "x", "1.0"] {
            assert_eq!(BlockReason::parse_code(raw), None, "{raw:?}");
        }
        assert_eq!(BlockReason::parse_code("0"), Some(BlockReason::Lost));
    }

    #[test]
    fn roles_parse_their_own_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
