//! The one retry schedule of everything that tries again: sources
//! reconnecting to a dongle, rtl_tcp or a feeder, the Kinesis sender
//! resending, `tail` re-reading a shard.
//!
//! The n-th pause is drawn uniformly from `d/2 ..= d`, where
//! `d = min(cap, base·2ⁿ)` ("equal jitter", AWS Architecture Blog,
//! "Exponential Backoff And Jitter"): the capped exponential comes from
//! the `backon` crate (not `backoff`: RUSTSEC-2025-0012 marks it
//! unmaintained and names backon its successor), the draw is ours. The
//! lower half keeps a floor under every pause, so no failure can turn a
//! loop into a busy one; the upper half spreads many clients (or many
//! shards) apart after a shared outage.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// A connection that lasted this long was a good one: its loss starts the
/// backoff over. A shorter one (a peer that accepts and hangs up, sends a
/// few bytes and closes) keeps the backoff growing, so it cannot turn a
/// reconnect loop into a busy one.
pub const STABLE: Duration = Duration::from_secs(60);

/// How often a failure that keeps repeating is logged again, with its count.
pub const REPEAT_LOG: Duration = Duration::from_secs(60);

/// A warning that may repeat (a refused client, a failed accept): logged
/// the first time, then at most once per [`REPEAT_LOG`] with how many
/// happened since, so a flood cannot flood the journal.
#[derive(Debug, Default)]
pub struct RepeatLog {
    last: Option<Instant>,
    since: u64,
}

impl RepeatLog {
    /// Counts one occurrence; `Some(n)` when it is time to log, `n` being
    /// the occurrences since the last line (this one included).
    pub fn hit(&mut self) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|t| t.elapsed() < REPEAT_LOG) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}

/// The bounds of a schedule: the first pause is at most `base`, pauses
/// double up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of the first pause.
    pub base: Duration,
    /// Upper bound of every pause.
    pub cap: Duration,
}

impl RetryPolicy {
    /// Sources reconnecting: a dongle plugged back in or a feeder
    /// restarted is found within 30 s.
    pub const SOURCES: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(30),
    };

    /// A fresh schedule under this policy.
    pub fn backoff(self) -> Backoff {
        Backoff::new(self)
    }
}

impl Default for RetryPolicy {
    /// Kinesis requests: 100 ms growing to 10 s.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }
}

/// Pauses between attempts, per [`RetryPolicy`].
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    schedule: ExponentialBackoff,
}

impl Backoff {
    /// The schedule from its first pause.
    pub fn new(policy: RetryPolicy) -> Self {
        let base = policy.base.max(Duration::from_millis(1));
        let policy = RetryPolicy {
            base,
            cap: policy.cap.max(base),
        };
        Backoff {
            policy,
            schedule: Self::schedule(policy),
        }
    }

    fn schedule(p: RetryPolicy) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(p.base)
            .with_max_delay(p.cap)
            .with_factor(2.0)
            .without_max_times()
            .build()
    }

    /// The next pause: uniform in `d/2 ..= d` (module docs).
    pub fn next_delay(&mut self) -> Duration {
        let d = self
            .schedule
            .next()
            .unwrap_or(self.policy.cap)
            .min(self.policy.cap);
        d.mul_f64(0.5 + 0.5 * fastrand::f64())
    }

    /// An attempt worked: the next failure starts from the first pause.
    pub fn reset(&mut self) {
        self.schedule = Self::schedule(self.policy);
    }

    /// Sleeps the next pause in a task; false if `token` was cancelled.
    pub async fn sleep(&mut self, token: &CancellationToken) -> bool {
        tokio::select! {
            _ = token.cancelled() => false,
            _ = tokio::time::sleep(self.next_delay()) => true,
        }
    }

    /// Sleeps the next pause on a blocking thread (the sdr thread), waking
    /// every 100 ms to look at `token`; false if it was cancelled.
    pub fn sleep_blocking(&mut self, token: &CancellationToken) -> bool {
        let until = Instant::now() + self.next_delay();
        while !token.is_cancelled() {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_between_half_and_all_of_the_capped_schedule() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let mut b = p.backoff();
        for i in 0..200 {
            let d = b.next_delay();
            let bound = Duration::from_millis((100u64 << i.min(10)).min(1000));
            assert!(
                d <= bound && d >= bound / 2,
                "retry {i}: {d:?} vs {bound:?}"
            );
        }
    }

    #[test]
    fn reset_starts_over_and_pauses_vary() {
        let mut b = RetryPolicy::SOURCES.backoff();
        let grown: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(grown[15..]
            .iter()
            .all(|d| *d >= RetryPolicy::SOURCES.cap / 2));
        b.reset();
        let first = b.next_delay();
        assert!(first <= RetryPolicy::SOURCES.base, "{first:?}");
        // Equal jitter: not one fixed value.
        let late: std::collections::BTreeSet<Duration> = grown[15..].iter().copied().collect();
        assert!(late.len() > 1, "{late:?}");
    }
}
