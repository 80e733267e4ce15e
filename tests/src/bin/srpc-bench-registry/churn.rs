//! `churn`: providers registering and unregistering; notifications against snapshots, and
//! the subscriber thread's CPU.

use std::time::{Duration, Instant};

use srpc_registry::Url;

use crate::common::{provider, scheme, thread_cpu};

/// Churn: `n` providers each register and unregister in a loop for `duration`, while one
/// subscriber (its own handle, on a thread and runtime of its own) reads every change. Reports
/// the notifications it woke for against the snapshots published (revisions), and the CPU its
/// thread used.
pub(crate) async fn churn(registry_url: &str, interface: &str, n: usize, duration: Duration) {
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let url = registry_url.to_owned();
    let subscriber = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let consumer = srpc::registry::connect(&url).await.unwrap();
            let mut sub = consumer.subscribe(&query).await.unwrap();
            let first = sub.snapshot().revision();
            ready_tx.send(()).unwrap();
            let cpu = thread_cpu();
            let started = Instant::now();
            let mut notifications = 0u64;
            loop {
                tokio::select! {
                    changed = sub.changed() => {
                        changed.unwrap();
                        notifications += 1;
                    }
                    _ = stop_rx.wait_for(|s| *s) => break,
                }
            }
            // Every provider ended unregistered: the subscriber has caught up when its
            // snapshot is empty.
            if !sub.snapshot().providers().is_empty() {
                sub.wait_for(|s| s.providers().is_empty(), Duration::from_secs(60))
                    .await
                    .unwrap();
                notifications += 1;
            }
            let cpu = thread_cpu() - cpu;
            let wall = started.elapsed();
            let published = sub.snapshot().revision() - first;
            drop(sub);
            let _ = consumer.close().await;
            (notifications, published, cpu, wall)
        })
    });
    ready_rx.await.unwrap();
    let registry = srpc::registry::connect(registry_url).await.unwrap();
    let started = Instant::now();
    let loops: Vec<_> = (0..n)
        .map(|i| {
            let registry = registry.clone();
            let url = provider(interface, i);
            tokio::spawn(async move {
                let mut cycles = 0u64;
                while started.elapsed() < duration {
                    registry.register(&url).await.unwrap();
                    registry.unregister(&url).await.unwrap();
                    cycles += 1;
                }
                cycles
            })
        })
        .collect();
    let mut cycles = 0;
    for task in loops {
        cycles += task.await.unwrap();
    }
    stop_tx.send_replace(true);
    let (notifications, published, cpu, wall) =
        tokio::task::spawn_blocking(move || subscriber.join().unwrap())
            .await
            .unwrap();
    let _ = registry.close().await;
    println!(
        "{:<10} churn {n} providers, {:.0} s: {} register/unregister changes; subscriber woke {notifications} times for {published} snapshots published (coalesced {:.1}:1), subscriber thread CPU {:.0} % ({:.2} s)",
        scheme(registry_url),
        duration.as_secs_f64(),
        cycles * 2,
        published as f64 / notifications.max(1) as f64,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu.as_secs_f64(),
    );
}
