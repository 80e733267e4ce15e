//! [`wait_for_answers`]: how a backend with no server (multicast, mDNS) decides that the
//! answers to a question it sent to the group are in.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Waits, after a question was sent, until the answers stop: returns `timeout` after the
/// start while nothing `found` says is useful has come, else `quiet` after the last arrival
/// (each change of `arrivals` is one). `arrivals` should be marked unchanged before the
/// question goes out, so that no answer is missed.
pub async fn wait_for_answers(
    arrivals: &mut watch::Receiver<u64>,
    found: impl Fn() -> bool,
    timeout: Duration,
    quiet: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let until = if found() {
            deadline.min(Instant::now() + quiet)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, arrivals.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_the_timeout_for_nothing_and_the_quiet_after_the_last_answer() {
        let (tx, mut rx) = watch::channel(0u64);
        let start = Instant::now();
        wait_for_answers(
            &mut rx,
            || false,
            Duration::from_secs(1),
            Duration::from_millis(100),
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));

        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send_modify(|n| *n += 1);
            }
            tx
        });
        wait_for_answers(
            &mut rx,
            || true,
            Duration::from_secs(1),
            Duration::from_millis(100),
        )
        .await;
        // The last answer came at 150 ms; quiet for 100 ms after it.
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        drop(sender.await.unwrap());
    }
}
