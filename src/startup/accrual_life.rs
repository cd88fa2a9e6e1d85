//! Startup refusal of purchase rules under which an accrual could expire
//! while its purchase can still be cancelled or refunded (issue 27). Such
//! an accrual would be Burnt and, once spent or compacted, a reversal
//! could not tell what expired from what was spent: the customer would
//! lose the same bonuses twice, or keep what a return should take. So no
//! configuration may let it happen.

use anyhow::bail;

use crate::config::BonusSettings;

const DAY_SECS: u64 = 86_400;

/// An accrual's lot is usable through `Date + activation_delay_days +
/// expiry_days`. The oldest accepted `Date` starts at most the (retention-
/// capped) date window before the confirm, and the purchase is reversible
/// until one retention after it: the lot must last that long, i.e. the
/// window and the retention together, counted in whole days (a day's
/// boundaries add at most one day, which the lot's last usable day covers).
pub fn refuse_accruals_expiring_while_reversible(bonus: &BonusSettings) -> anyhow::Result<()> {
    let retention = bonus.idempotency_retention_secs;
    let window = bonus.purchase_date_max_age_secs.min(retention);
    let needed = i64::try_from(retention.saturating_add(window) / DAY_SECS).unwrap_or(i64::MAX);
    let lasts = bonus
        .activation_delay_days
        .saturating_add(bonus.expiry_days);
    if lasts < needed {
        bail!(
            "bonus.activation_delay_days + bonus.expiry_days = {lasts} days: an accrual could expire while its purchase can still be cancelled or refunded; it must be at least {needed} days (bonus.purchase_date_max_age_secs, capped by bonus.idempotency_retention_secs, plus the retention)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bonus(delay: i64, expiry: i64, retention_days: u64, window_days: u64) -> BonusSettings {
        BonusSettings {
            accrual_percent: 500,
            activation_delay_days: delay,
            expiry_days: expiry,
            max_writeoff_percent: 5000,
            discount_percent: 0,
            idempotency_retention_secs: retention_days * DAY_SECS,
            purchase_date_max_age_secs: window_days * DAY_SECS,
            purchase_date_max_ahead_secs: DAY_SECS,
            hold_secs: 900,
            hold_max_secs: 3600,
        }
    }

    #[test]
    fn an_accrual_must_outlive_the_date_window_and_the_retention() {
        assert!(refuse_accruals_expiring_while_reversible(&bonus(14, 365, 30, 30)).is_ok());
        assert!(refuse_accruals_expiring_while_reversible(&bonus(0, 60, 30, 30)).is_ok());
        let err = refuse_accruals_expiring_while_reversible(&bonus(0, 5, 30, 30)).unwrap_err();
        assert!(err.to_string().contains("at least 60 days"), "{err}");
        assert!(refuse_accruals_expiring_while_reversible(&bonus(0, 59, 30, 30)).is_err());
        // The window never counts beyond the retention (it is capped so).
        assert!(refuse_accruals_expiring_while_reversible(&bonus(0, 6, 3, 30)).is_ok());
        assert!(refuse_accruals_expiring_while_reversible(&bonus(0, 5, 3, 30)).is_err());
    }
}
