//! Exponential backoff with full jitter, capped, never shorter than Zoom's `Retry-After`.
//! Pure: the random source is a parameter.

use std::time::Duration;

use rand::Rng;

/// The first retry waits up to this long.
const BASE: Duration = Duration::from_millis(250);
/// No wait is longer than this (unless Zoom asks for more).
const CAP: Duration = Duration::from_secs(30);

/// How long to wait before attempt `attempt + 1`, after `attempt` failed (1-based).
pub fn backoff(attempt: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
    let ceiling = BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(CAP);
    let jittered = ceiling.mul_f64(rng.gen_range(0.0..=1.0));
    retry_after.map_or(jittered, |after| after.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=20 {
            let ceiling = BASE.saturating_mul(1 << (attempt - 1).min(16)).min(CAP);
            for _ in 0..50 {
                assert!(backoff(attempt, None, &mut rng) <= ceiling);
            }
        }
        assert!(backoff(30, None, &mut rng) <= CAP);
        assert!(backoff(1, Some(Duration::from_secs(5)), &mut rng) >= Duration::from_secs(5));
        let waits: Vec<Duration> = (0..100).map(|_| backoff(3, None, &mut rng)).collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered");
    }
}
