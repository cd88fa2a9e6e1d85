//! The engine's clock. An instance reads the time for the dates of its
//! rules (today, a purchase's accrual dates, the `Date` check) and for its
//! history entries; nothing the store keeps may depend on it (record
//! expiries and claim ages are the store's own clock's). The tests run an
//! instance whose clock is off by a fixed offset to hold the store to that.

use time::{Date, Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system's clock moved by `offset` (an instance whose clock runs
    /// ahead, or behind with a negative offset).
    pub fn skewed(offset: Duration) -> Clock {
        Clock { offset }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().saturating_add(self.offset)
    }

    pub fn today(&self) -> Date {
        self.now().date()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_clock_is_off_by_its_offset() {
        let ahead = Clock::skewed(Duration::hours(1)).now();
        let system = Clock::system().now();
        let off = ahead - system;
        assert!(
            off > Duration::minutes(59) && off <= Duration::hours(1),
            "{off}"
        );
    }
}
