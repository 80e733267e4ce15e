//! The figures of an srpc HTTP registry's `/metrics`, for the registry page: read when the
//! page asks (at most once a second), with heartbeats per second from two readings.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a reading may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most of `/metrics` read (it is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// Readings closer than this reuse the last one.
const FRESH: Duration = Duration::from_secs(1);

/// What the registry page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Figures {
    pub(crate) instances: Option<u64>,
    pub(crate) watchers: Option<u64>,
    pub(crate) expirations: Option<u64>,
    pub(crate) heartbeats: Option<u64>,
    /// From the last two readings at least a second apart.
    pub(crate) heartbeats_per_second: Option<f64>,
    pub(crate) resident_bytes: Option<u64>,
    /// Why there are no figures, when the reading failed.
    pub(crate) error: Option<String>,
}

pub(crate) struct Metrics {
    url: String,
    http: reqwest::Client,
    /// The last reading, when it was taken, and the heartbeat count with its time before.
    last: Mutex<Option<(Instant, Figures)>>,
}

impl Metrics {
    /// A reader of `url`; `None` when no HTTP client can be made.
    pub(crate) fn new(url: String) -> Option<Metrics> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .ok()?;
        Some(Metrics {
            url,
            http,
            last: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Figures)>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figures now (or from less than a second ago).
    pub(crate) async fn read(&self) -> Figures {
        if let Some((at, figures)) = self.lock().as_ref() {
            if at.elapsed() < FRESH {
                return figures.clone();
            }
        }
        let now = Instant::now();
        let mut figures = match self.fetch().await {
            Ok(text) => parse(&text),
            Err(error) => Figures {
                error: Some(error),
                ..Figures::default()
            },
        };
        let mut last = self.lock();
        if let (Some((at, before)), Some(count)) = (last.as_ref(), figures.heartbeats) {
            let seconds = now.duration_since(*at).as_secs_f64();
            figures.heartbeats_per_second = match before.heartbeats {
                Some(earlier) if seconds > 0.0 && count >= earlier => {
                    Some((count - earlier) as f64 / seconds)
                }
                _ => before.heartbeats_per_second,
            };
        }
        *last = Some((now, figures.clone()));
        figures
    }

    async fn fetch(&self) -> Result<String, String> {
        let mut response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.url))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("{} sent more than {MAX_BODY} bytes", self.url));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The figures of a Prometheus text answer; what it lacks stays `None`.
pub(crate) fn parse(text: &str) -> Figures {
    let value = |name: &str| {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse::<f64>().ok())?
            })
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64)
    };
    Figures {
        instances: value("srpc_registry_instances"),
        watchers: value("srpc_registry_watchers"),
        expirations: value("srpc_registry_expirations_total"),
        heartbeats: value("srpc_registry_heartbeats_total"),
        heartbeats_per_second: None,
        resident_bytes: value("process_resident_memory_bytes"),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registry_figures_and_skips_the_rest() {
        let text = "# HELP srpc_registry_instances Live instances.\n\
                    # TYPE srpc_registry_instances gauge\n\
                    srpc_registry_instances 12\n\
                    srpc_registry_heartbeats_total 3400\n\
                    srpc_registry_expirations_total 2\n\
                    process_resident_memory_bytes 1.048576e7\n\
                    srpc_registry_watchers -1\n";
        let figures = parse(text);
        assert_eq!(figures.instances, Some(12));
        assert_eq!(figures.heartbeats, Some(3400));
        assert_eq!(figures.expirations, Some(2));
        assert_eq!(figures.resident_bytes, Some(10_485_760));
        assert_eq!(figures.watchers, None, "a negative gauge is not shown");
    }
}
