//! The read side of the JSON API, and the event stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::Inner;
use crate::model::{self, InstanceRow, ServiceRow};

/// At most this many service rows in one answer: the page says how many more matched.
const MAX_ROWS: usize = 5_000;

/// The longest search text, in bytes, and the most words in it.
const MAX_QUERY: usize = 1024;
const MAX_WORDS: usize = 16;

/// The shortest time between two events of one stream.
const EVENT_GAP: Duration = Duration::from_millis(250);

/// A JSON answer with the dashboard's security headers.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut response = (status, Json(value)).into_response();
    crate::secure(response.headers_mut());
    response
}

#[derive(Serialize)]
struct Problem<'a> {
    error: &'a str,
}

pub(crate) fn problem(status: StatusCode, error: &str) -> Response {
    json(status, &Problem { error })
}

pub(crate) async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such page")
}

#[derive(Serialize)]
struct RegistryJson<'a> {
    registry: &'a str,
    connected: bool,
    revision: u64,
    /// Milliseconds since the epoch of the last change of content, if any was seen.
    last_change: Option<u64>,
    services: usize,
    providers: usize,
    consumers: usize,
    configurators: usize,
    routers: usize,
    /// Whether write actions are allowed (with the token).
    writes: bool,
    /// The HTTP registry's own figures, when its `/metrics` is known.
    metrics: Option<crate::metrics::Figures>,
}

pub(crate) async fn registry(State(inner): State<Arc<Inner>>) -> Response {
    let snapshot = inner.sub.snapshot();
    let last_change = *inner.lock_last_change();
    let metrics = match &inner.metrics {
        Some(metrics) => Some(metrics.read().await),
        None => None,
    };
    json(
        StatusCode::OK,
        &RegistryJson {
            registry: &inner.options.registry,
            connected: snapshot.is_connected(),
            revision: snapshot.revision(),
            last_change: last_change.map(model::millis),
            services: model::service_count(&snapshot),
            providers: snapshot.providers().len(),
            consumers: snapshot.category("consumers").len(),
            configurators: snapshot.category("configurators").len(),
            routers: snapshot.category("routers").len(),
            writes: inner.options.write_token.is_some(),
            metrics,
        },
    )
}

/// The services page's query: free text, filters and order.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServicesQuery {
    /// Words that must all occur in the service's key, an address, an application or a
    /// parameter (`key=value`) of one of its providers or consumers; case-insensitive.
    q: String,
    /// Only services with a provider of this protocol.
    protocol: String,
    /// `providers`: with providers; `consumers`: with consumers; `connected`: providers
    /// and consumers both (in use); `orphans`: consumers without providers; `unused`:
    /// providers without consumers.
    category: String,
    /// `disabled`: with a disabled provider; `enabled`: with no disabled provider.
    state: String,
    /// `name` (default), `providers` or `consumers` (most first).
    sort: String,
}

#[derive(Serialize)]
struct ServicesJson {
    connected: bool,
    revision: u64,
    /// Services that matched; `rows` holds at most 5 000 of them.
    matched: usize,
    total: usize,
    protocols: Vec<String>,
    rows: Vec<ServiceRow>,
}

pub(crate) async fn services(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<ServicesQuery>,
) -> Response {
    let snapshot = inner.sub.snapshot();
    let all = model::services(&snapshot);
    let total = all.len();
    let mut protocols: Vec<String> = all.iter().flat_map(|r| r.protocols.clone()).collect();
    protocols.sort();
    protocols.dedup();
    // Bounded: every word is looked for in every service's text.
    if query.q.len() > MAX_QUERY || query.q.split_whitespace().count() > MAX_WORDS {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("a search holds at most {MAX_WORDS} words and {MAX_QUERY} bytes"),
        );
    }
    let words: Vec<String> = query.q.split_whitespace().map(str::to_lowercase).collect();
    let mut rows: Vec<ServiceRow> = all
        .into_iter()
        .filter(|row| words.iter().all(|w| row.haystack.contains(w.as_str())))
        .filter(|row| query.protocol.is_empty() || row.protocols.contains(&query.protocol))
        .filter(|row| match query.category.as_str() {
            "providers" => row.providers > 0,
            "consumers" => row.consumers > 0,
            "connected" => row.providers > 0 && row.consumers > 0,
            "orphans" => row.providers == 0 && row.consumers > 0,
            "unused" => row.providers > 0 && row.consumers == 0,
            _ => true,
        })
        .filter(|row| match query.state.as_str() {
            "disabled" => row.disabled > 0,
            "enabled" => row.disabled == 0,
            _ => true,
        })
        .collect();
    match query.sort.as_str() {
        "providers" => rows.sort_by(|a, b| b.providers.cmp(&a.providers).then(a.key.cmp(&b.key))),
        "consumers" => rows.sort_by(|a, b| b.consumers.cmp(&a.consumers).then(a.key.cmp(&b.key))),
        _ => {} // By key already.
    }
    let matched = rows.len();
    rows.truncate(MAX_ROWS);
    json(
        StatusCode::OK,
        &ServicesJson {
            connected: snapshot.is_connected(),
            revision: snapshot.revision(),
            matched,
            total,
            protocols,
            rows,
        },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServiceQuery {
    /// The service key: `group/interface:version`.
    key: String,
}

#[derive(Serialize)]
struct ServiceJson {
    key: String,
    connected: bool,
    revision: u64,
    writes: bool,
    providers: Vec<InstanceRow>,
    consumers: Vec<InstanceRow>,
}

pub(crate) async fn service(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<ServiceQuery>,
) -> Response {
    let snapshot = inner.sub.snapshot();
    let (providers, consumers) = model::instances(&snapshot, &query.key);
    json(
        StatusCode::OK,
        &ServiceJson {
            key: query.key,
            connected: snapshot.is_connected(),
            revision: snapshot.revision(),
            writes: inner.options.write_token.is_some(),
            providers,
            consumers,
        },
    )
}

#[derive(Serialize)]
struct Changed {
    revision: u64,
    connected: bool,
}

/// Server-sent events: `changed` with the revision and whether the registry is connected,
/// at once and then whenever the registry's state changes (bursts coalesce, at most four
/// events a second). The page
/// fetches what it shows again on each.
pub(crate) async fn events(State(inner): State<Arc<Inner>>) -> Response {
    let Ok(permit) = inner.streams.clone().try_acquire_owned() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages follow this dashboard; this one polls instead",
        );
    };
    let rx = inner.sub.watch();
    let stream = changes(rx, permit);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    crate::secure(response.headers_mut());
    response
}

fn changes(
    rx: tokio::sync::watch::Receiver<Arc<srpc_registry::Snapshot>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    futures_util::stream::unfold((rx, permit, true), |(mut rx, permit, first)| async move {
        if !first {
            // At most a few events a second: under churn each page would otherwise fetch
            // its view again for every change. The newest state is what comes after.
            tokio::time::sleep(EVENT_GAP).await;
            if rx.changed().await.is_err() {
                return None; // The subscription ended: so does the stream.
            }
        }
        let snapshot = rx.borrow_and_update().clone();
        let data = serde_json::to_string(&Changed {
            revision: snapshot.revision(),
            connected: snapshot.is_connected(),
        })
        .unwrap_or_default();
        let event = Event::default().event("changed").data(data);
        Some((Ok(event), (rx, permit, false)))
    })
}
