//! The retry delay of submissions: exponential backoff with jitter.

use std::time::Duration;

use crate::openstack::Backoff;

/// Exponential backoff with jitter: the n-th retry waits between half and
/// all of `base * 2^(n-1)`, never more than `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    Backoff { base, max }
        .delay(attempt)
        .mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, base, max);
            assert!(
                first >= Duration::from_secs(1) && first <= base,
                "{first:?}"
            );
            let third = backoff(3, base, max);
            assert!(
                third >= Duration::from_secs(4) && third <= Duration::from_secs(8),
                "{third:?}"
            );
            assert!(backoff(30, base, max) <= max);
        }
    }
}
