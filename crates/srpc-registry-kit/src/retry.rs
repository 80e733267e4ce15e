//! [`RetryPolicy`] and [`Backoff`]: how every retry loop of srpc waits, written once.

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Capped exponential backoff that never gives up: from `min`, doubling with jitter, up to
/// `max`. Read from the registry URL (`retry.period`, `retry.max.period`) and handed to a
/// backend through [`crate::Context::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

/// One run of waits of a [`RetryPolicy`]: each [`Backoff::wait`] sleeps longer, up to the cap,
/// until [`Backoff::reset`] after a success.
pub struct Backoff {
    policy: RetryPolicy,
    delays: Box<dyn Iterator<Item = Duration> + Send + Sync>,
}

impl RetryPolicy {
    /// A policy from `min` to `max` (a `max` below `min` is raised to it).
    pub fn new(min: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            min,
            max: max.max(min),
        }
    }

    /// The same policy with its longest delay at most `cap`: for loops whose recovery time
    /// users feel (watches, keepalives), whatever the registry-wide setting.
    #[must_use]
    pub fn capped(self, cap: Duration) -> RetryPolicy {
        RetryPolicy::new(self.min.min(cap), self.max.min(cap))
    }

    /// A fresh run of waits.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            delays: Box::new(retry_delays(self.min, self.max)),
        }
    }
}

impl Default for RetryPolicy {
    /// 200 ms to 30 s, as Dubbo's `retry.period` default and a cap that keeps a dead registry
    /// from being hammered.
    fn default() -> RetryPolicy {
        RetryPolicy::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

impl Backoff {
    /// The next delay (the cap once the growth is used up).
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max)
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts again from the first delay, after a success.
    pub fn reset(&mut self) {
        *self = self.policy.backoff();
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Delays for retrying forever: exponential from `min`, doubling up to `max`, each then
/// scaled by a random factor in [0.5, 1] ("equal jitter"), so that clients that failed
/// together do not retry together, and no delay is ever longer than `max`. Every retry loop of
/// srpc uses this (through [`RetryPolicy::backoff`]), so they all back off alike.
pub fn retry_delays(min: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send + Sync {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .map(|delay| delay.mul_f64(0.5 + fastrand::f64() * 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut backoff = policy.backoff();
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= policy.min / 2 && delays[0] <= policy.min);
        assert!(delays.iter().all(|d| *d <= policy.max), "{delays:?}");
        assert!(delays[19] >= policy.max / 2, "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= policy.min);
    }

    #[test]
    fn capped_lowers_both_bounds() {
        let policy = RetryPolicy::default().capped(Duration::from_millis(100));
        assert_eq!(policy.max, Duration::from_millis(100));
        assert_eq!(policy.min, Duration::from_millis(100));
        let policy = RetryPolicy::default().capped(Duration::from_secs(5));
        assert_eq!(
            (policy.min, policy.max),
            (Duration::from_millis(200), Duration::from_secs(5))
        );
    }
}
