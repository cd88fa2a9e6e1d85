//! The engine settings the store-level tests drive `Ops` with: accruals
//! active at once (no activation delay), so that balances are easy to read.

use loyalty::domain::purchase::BonusRules;
use loyalty::domain::{Actor, Role};
use loyalty::engine::{OpsSettings, PurchaseSettings};

pub fn ops_settings(lease_ms: i64, retention_secs: u64) -> OpsSettings {
    OpsSettings {
        required_fields: vec![],
        claim_lease_ms: lease_ms,
        purchases: PurchaseSettings {
            rules: BonusRules {
                accrual_bp: 500,
                activation_delay_days: 0,
                expiry_days: 365,
                max_writeoff_bp: 5000,
                discount_bp: 300,
                date_max_age_secs: 30 * 86_400,
                date_max_ahead_secs: 86_400,
            },
            retention_secs,
            hold_secs: 900,
            hold_max_secs: 3600,
        },
    }
}

pub fn admin() -> Actor {
    Actor {
        login: "t".into(),
        role: Role::Administrator,
    }
}
