//! [`Bucket`]: a token bucket, how srpc paces what a peer could make it do in a loop (queries
//! of a blocking-query loop, bytes of bulk answers).

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait a [`Bucket`] ever asks for, however deep in debt it is.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// Holds up to `burst` tokens and earns `per_second` of them a second. Taking more tokens
/// than it holds is allowed and leaves a debt, which is what the taker must wait for: so a
/// bucket shared by several takers (behind a mutex) bounds their sum, and nobody sleeps
/// while holding the lock.
#[derive(Debug, Clone)]
pub struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket. A `per_second` that is not above zero is taken as the least positive
    /// rate (every wait then is [the longest](Bucket::reserve)).
    pub fn new(burst: f64, per_second: f64) -> Bucket {
        let burst = if burst.is_finite() {
            burst.max(0.0)
        } else {
            0.0
        };
        Bucket {
            burst,
            per_second: if per_second > 0.0 && per_second.is_finite() {
                per_second
            } else {
                f64::MIN_POSITIVE
            },
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens now and says how long to wait before using them: zero when the
    /// bucket held them, else until the debt is earned back (at most an hour).
    pub fn reserve(&mut self, n: f64) -> Duration {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst) - n.max(0.0);
        self.last = now;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-self.tokens / self.per_second)
            .map_or(LONGEST_WAIT, |wait| wait.min(LONGEST_WAIT))
    }

    /// The whole tokens the bucket holds now (none while in debt): what a taker that does
    /// not wait may take with [`Bucket::reserve`].
    pub fn available(&mut self) -> usize {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            // Bounded by `burst`, a finite non-negative number.
            self.tokens.floor() as usize
        } else {
            0
        }
    }

    /// Takes one token, waiting until the bucket has it.
    pub async fn take(&mut self) {
        let wait = self.reserve(1.0);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal to a microsecond: the bucket counts in floating point.
    fn about(got: Duration, want: Duration) -> bool {
        got.abs_diff(want) < Duration::from_micros(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_free_then_the_rate_holds() {
        let mut bucket = Bucket::new(2.0, 10.0);
        assert_eq!(bucket.reserve(1.0), Duration::ZERO);
        assert_eq!(bucket.reserve(1.0), Duration::ZERO);
        // Empty: the third waits one token's worth, the fourth two.
        assert!(about(bucket.reserve(1.0), Duration::from_millis(100)));
        assert!(about(bucket.reserve(1.0), Duration::from_millis(200)));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(about(bucket.reserve(1.0), Duration::from_millis(100)));
        // Earned back, but never more than the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(bucket.reserve(2.0), Duration::ZERO);
        assert!(about(bucket.reserve(1.0), Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn takers_sharing_a_bucket_get_its_rate_together() {
        let mut bucket = Bucket::new(0.0, 1000.0);
        let started = Instant::now();
        for _ in 0..50 {
            bucket.take().await;
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(49) && took <= Duration::from_millis(52),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nonsense_rates_wait_at_most_an_hour() {
        for rate in [0.0, -1.0, f64::NAN] {
            let mut bucket = Bucket::new(0.0, rate);
            assert_eq!(bucket.reserve(1.0), LONGEST_WAIT, "rate {rate}");
        }
        let mut bucket = Bucket::new(f64::INFINITY, 1.0);
        assert_eq!(bucket.reserve(1e300), LONGEST_WAIT);
    }
}
