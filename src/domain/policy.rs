//! Who may do what: the role × method table of docs/api.md §2 and the role ×
//! reason tables of §6.

use serde::{Deserialize, Serialize};

use super::reference::{BlockReason, Role, UnblockReason};

/// The authenticated caller, recorded with every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub login: String,
    pub role: Role,
}

/// Groups of API methods as the role table of §2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Balance,
    Issue,
    BindTo,
    Active,
    Block,
    Unblock,
    Contacts,
    Purchases,
    ManualBonuses,
    History,
    DataLoading,
}

impl Method {
    pub const ALL: [Method; 11] = [
        Method::Balance,
        Method::Issue,
        Method::BindTo,
        Method::Active,
        Method::Block,
        Method::Unblock,
        Method::Contacts,
        Method::Purchases,
        Method::ManualBonuses,
        Method::History,
        Method::DataLoading,
    ];
}

/// May `role` call `method` at all (§2; history per §9)?
pub fn may_call(role: Role, method: Method) -> bool {
    use Method::*;
    match role {
        Role::Administrator => true,
        Role::Pos => matches!(
            method,
            Balance | Issue | BindTo | Active | Contacts | Purchases
        ),
        Role::Client => matches!(
            method,
            Balance | BindTo | Active | Block | Unblock | Contacts
        ),
        Role::CcOperator => matches!(
            method,
            Balance | BindTo | Active | Block | Unblock | Contacts | History
        ),
        Role::Marketer => matches!(
            method,
            Balance | BindTo | Active | Block | Unblock | Contacts | ManualBonuses | History
        ),
        Role::SeniorEmployee | Role::Director => matches!(
            method,
            Balance | Issue | BindTo | Active | Block | Unblock | Contacts | Purchases | History
        ),
    }
}

/// May `role` block a card with `reason` (§6, first table)?
pub fn may_block(role: Role, reason: BlockReason) -> bool {
    use BlockReason::*;
    match role {
        Role::Pos => false,
        Role::Client => matches!(reason, Lost),
        Role::CcOperator | Role::Marketer => matches!(reason, Lost | Refusal | Replacement),
        Role::SeniorEmployee => matches!(reason, Lost | Unwanted | Replacement),
        Role::Director => matches!(reason, Lost | Unwanted | Blacklist | Replacement),
        Role::Administrator => true,
    }
}

/// May `role` unblock with `reason` (§6, second table)?
pub fn may_unblock(role: Role, reason: UnblockReason) -> bool {
    use UnblockReason::*;
    match role {
        Role::Pos => false,
        Role::Client => matches!(reason, Found),
        Role::CcOperator | Role::Marketer => matches!(reason, Found | Restore),
        Role::SeniorEmployee => matches!(reason, Found | ExitUnwanted),
        Role::Director => matches!(reason, Found | ExitUnwanted | ExitBlacklist),
        Role::Administrator => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §6 block table, row by row, columns 0..=4 ("yes" = true).
    const BLOCK: [(Role, [bool; 5]); 7] = [
        (Role::Client, [true, false, false, false, false]),
        (Role::CcOperator, [true, false, false, true, true]),
        (Role::Marketer, [true, false, false, true, true]),
        (Role::SeniorEmployee, [true, true, false, false, true]),
        (Role::Director, [true, true, true, false, true]),
        (Role::Administrator, [true, true, true, true, true]),
        (Role::Pos, [false, false, false, false, false]),
    ];

    /// §6 unblock table, columns 0..=3.
    const UNBLOCK: [(Role, [bool; 4]); 7] = [
        (Role::Client, [true, false, false, false]),
        (Role::CcOperator, [true, false, false, true]),
        (Role::Marketer, [true, false, false, true]),
        (Role::SeniorEmployee, [true, true, false, false]),
        (Role::Director, [true, true, true, false]),
        (Role::Administrator, [true, true, true, true]),
        (Role::Pos, [false, false, false, false]),
    ];

    #[test]
    fn block_table_matches_the_spec_cell_by_cell() {
        for (role, row) in BLOCK {
            for (code, want) in row.iter().enumerate() {
                let reason = BlockReason::from_code(code as u8).unwrap();
                assert_eq!(may_block(role, reason), *want, "{role:?} × {reason:?}");
            }
        }
    }

    #[test]
    fn unblock_table_matches_the_spec_cell_by_cell() {
        for (role, row) in UNBLOCK {
            for (code, want) in row.iter().enumerate() {
                let reason = UnblockReason::from_code(code as u8).unwrap();
                assert_eq!(may_unblock(role, reason), *want, "{role:?} × {reason:?}");
            }
        }
    }

    #[test]
    fn method_table_matches_section_2() {
        use Method::*;
        let table: [(Role, &[Method]); 7] = [
            (
                Role::Pos,
                &[Balance, Issue, BindTo, Active, Contacts, Purchases],
            ),
            (
                Role::Client,
                &[Balance, BindTo, Active, Block, Unblock, Contacts],
            ),
            (
                Role::CcOperator,
                &[Balance, BindTo, Active, Block, Unblock, Contacts, History],
            ),
            (
                Role::Marketer,
                &[
                    Balance,
                    BindTo,
                    Active,
                    Block,
                    Unblock,
                    Contacts,
                    ManualBonuses,
                    History,
                ],
            ),
            (
                Role::SeniorEmployee,
                &[
                    Balance, Issue, BindTo, Active, Block, Unblock, Contacts, Purchases, History,
                ],
            ),
            (
                Role::Director,
                &[
                    Balance, Issue, BindTo, Active, Block, Unblock, Contacts, Purchases, History,
                ],
            ),
            (Role::Administrator, &Method::ALL),
        ];
        for (role, allowed) in table {
            for m in Method::ALL {
                assert_eq!(may_call(role, m), allowed.contains(&m), "{role:?} × {m:?}");
            }
        }
    }
}
