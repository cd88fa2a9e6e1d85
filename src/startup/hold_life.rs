//! A hold's life as the engine uses it (issue 24): `bonus.hold_secs` and
//! `bonus.hold_max_secs`, refused when no hold could live at all, and the
//! maximum capped by the retention. A hold binds its PurchaseId for the
//! retention only (the claim and the hold's outcome expire with it): a
//! hold still open after that could not be confirmed (its claim judged
//! expired, or taken by another card meanwhile), and its end could lie
//! past what the clock can say (an unbounded maximum overflowed it).

use anyhow::bail;

use crate::config::BonusSettings;

/// `(default, maximum)` in seconds, both at least 1, the maximum at most
/// the retention (itself at most ten years, checked before).
pub fn hold_limits(bonus: &BonusSettings) -> anyhow::Result<(u64, u64)> {
    if bonus.hold_secs == 0 || bonus.hold_max_secs == 0 {
        bail!(
            "bonus.hold_secs ({}) and bonus.hold_max_secs ({}) must be at least 1: a hold of 0 seconds is born expired",
            bonus.hold_secs,
            bonus.hold_max_secs
        );
    }
    let retention = bonus.idempotency_retention_secs;
    let max = bonus.hold_max_secs.min(retention);
    if max < bonus.hold_max_secs {
        tracing::warn!(
            configured = bonus.hold_max_secs,
            used = max,
            "bonus.hold_max_secs exceeds bonus.idempotency_retention_secs: a hold lasts at most the retention of its PurchaseId"
        );
    }
    Ok((bonus.hold_secs.min(max), max))
}
