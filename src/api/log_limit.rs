//! A cap on how many lines a noisy event writes per second. Under a
//! credential-stuffing flood every failed login wrote a line (issue 28,
//! item 3): the log then costs more than the refusal, and buries the rest.
//! The metrics still count every event; the log shows the first few each
//! second and how many it left out.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct LogLimit {
    per_sec: u32,
    state: Mutex<State>,
}

struct State {
    second_start: Instant,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    /// `per_sec` = 0 logs nothing (the metrics still count).
    pub fn new(per_sec: u32) -> LogLimit {
        LogLimit {
            per_sec,
            state: Mutex::new(State {
                second_start: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)`: write this line, and say that `n` were left out since the
    /// last one written; `None`: leave it out.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock();
        if now.duration_since(s.second_start) >= Duration::from_secs(1) {
            s.second_start = now;
            s.written = 0;
        }
        if s.written >= self.per_sec {
            s.suppressed += 1;
            return None;
        }
        s.written += 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimit;

    #[test]
    fn writes_the_first_lines_of_a_second_and_counts_the_rest() {
        let limit = LogLimit::new(3);
        let got: Vec<_> = (0..10).map(|_| limit.admit()).collect();
        assert_eq!(&got[..3], &[Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        // The next second's first line reports the seven left out.
        limit.state.lock().second_start -= std::time::Duration::from_secs(1);
        assert_eq!(limit.admit(), Some(7));
        assert!(LogLimit::new(0).admit().is_none());
    }
}
