//! The system's clocks, read by the shell only: the core gets their readings as `Now`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::core::clock::Now;

/// The real clocks, measured from the moment the server started.
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock { start: Instant::now() }
    }

    pub fn now(&self) -> Now {
        let mono_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Now { mono_ms, unix_ms: unix_micros() / 1000 }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
