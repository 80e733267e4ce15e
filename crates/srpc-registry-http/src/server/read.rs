//! The handlers that read the book, each a long-poll when given `?index=N`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize, Serializer};
use srpc_registry_kit::{Bucket, Url};
use tokio::sync::watch;
use tokio::time::Instant;

use super::book::{Book, Instance, Listing, Service, Shared, Watching};
use super::reply::{ApiError, error, with_index};
use crate::api::{MAX_WAIT, SERVERS_HEADER, ServiceSummary, ServicesResponse};

/// `?index=N&wait=30s`.
#[derive(Debug, Deserialize)]
pub(super) struct WatchParams {
    pub(super) index: Option<u64>,
    pub(super) wait: Option<String>,
}

impl WatchParams {
    pub(super) fn wait(&self) -> Result<Option<(u64, Duration)>, ApiError> {
        let Some(index) = self.index else {
            return Ok(None);
        };
        let wait = match &self.wait {
            None => Duration::from_secs(30),
            Some(text) => match text.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => humantime::parse_duration(text).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("invalid wait {text:?}: {e}"),
                    )
                })?,
            },
        };
        Ok(Some((index, wait.min(MAX_WAIT))))
    }
}

/// Waits until `revision` passes `index` (or went backwards: a restarted server), for at
/// most `wait`.
pub(super) async fn long_poll(
    state: &Shared,
    mut revision: watch::Receiver<u64>,
    watch: Option<(u64, Duration)>,
) {
    let Some((index, wait)) = watch else { return };
    if *revision.borrow() != index {
        return;
    }
    state.watchers.fetch_add(1, Ordering::Relaxed);
    let _watching = Watching(&state.watchers);
    let mut stop = state.stop.subscribe();
    tokio::select! {
        _ = tokio::time::timeout(wait, revision.wait_for(|r| *r != index)) => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
}

pub(super) async fn get_service(
    State(state): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(params): Query<WatchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_read(&headers)?;
    let watch = params.wait()?;
    notice_a_restart(&state, watch);
    let revision = state
        .book()
        .services
        .entry(key.clone())
        .or_insert_with(Service::new)
        .revision
        .subscribe();
    long_poll(&state, revision, watch).await;
    let service = key.clone();
    Ok(shared_listing(
        &state,
        |book| {
            book.services
                .get(&key)
                .map(|service| service.listing.clone())
                .unwrap_or_default()
        },
        |book| match book.services.get(&key) {
            Some(service) => (
                *service.revision.borrow(),
                urls_of(service.instances.values()),
            ),
            None => (0, Vec::new()),
        },
        move |revision, urls, warming| {
            json_bytes(&ServiceBody {
                service: &service,
                revision,
                instances: Sorted::new(urls),
                warming,
            })
        },
    )
    .await)
}

pub(super) async fn list_instances(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_read(&headers)?;
    let watch = params.wait()?;
    notice_a_restart(&state, watch);
    long_poll(&state, state.revision.subscribe(), watch).await;
    Ok(shared_listing(
        &state,
        |book| book.all_listing.clone(),
        |book| {
            let urls = urls_of(book.services.values().flat_map(|s| s.instances.values()));
            (book.revision, urls)
        },
        |revision, urls, warming| {
            json_bytes(&InstancesBody {
                revision,
                instances: Sorted::new(urls),
                warming,
            })
        },
    )
    .await)
}

pub(super) async fn list_services(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_read(&headers)?;
    let watch = params.wait()?;
    notice_a_restart(&state, watch);
    long_poll(&state, state.revision.subscribe(), watch).await;
    Ok(shared_listing(
        &state,
        |book| book.services_listing.clone(),
        |book| {
            let services = book
                .services
                .iter()
                .filter(|(_, s)| !s.instances.is_empty())
                .map(|(key, s)| ServiceSummary {
                    service: key.clone(),
                    instances: s.instances.len(),
                    revision: *s.revision.borrow(),
                })
                .collect();
            (book.revision, services)
        },
        |revision, services, warming| {
            json_bytes(&ServicesResponse {
                revision,
                services,
                warming,
            })
        },
    )
    .await)
}

/// A watcher that knew a revision this server never reached talked to it before a restart.
fn notice_a_restart(state: &Shared, watch: Option<(u64, Duration)>) {
    if let Some((index, _)) = watch {
        if index > *state.revision.borrow() {
            state.restart_seen("a watcher's index is ahead of this registry's revision");
        }
    }
}

fn urls_of<'a>(instances: impl Iterator<Item = &'a Instance>) -> Vec<Url> {
    instances.map(|i| i.url.clone()).collect()
}

/// `GET /v1/services/{key}`'s body, as [`crate::api::ServiceResponse`] reads it.
#[derive(Serialize)]
struct ServiceBody<'a> {
    service: &'a str,
    revision: u64,
    instances: Sorted,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    warming: bool,
}

/// `GET /v1/instances`'s body, as [`crate::api::InstancesResponse`] reads it.
#[derive(Serialize)]
struct InstancesBody {
    revision: u64,
    instances: Sorted,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    warming: bool,
}

/// URLs written as their full strings in byte order, without a `String` each.
struct Sorted(Vec<Url>);

impl Sorted {
    fn new(mut urls: Vec<Url>) -> Sorted {
        urls.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
        Sorted(urls)
    }
}

impl Serialize for Sorted {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Url::as_full_str))
    }
}

/// The answer of a listing: the shared body in the cell `listing` picks, made by its first
/// reader, who takes what `gather` takes under the lock (the URLs are shared, a reference
/// count each) and turns it into text with `make` (told whether the server is warming up) on
/// a blocking thread. Every other reader waits for that body: one gathering per change,
/// however many read.
async fn shared_listing<G: Send + 'static>(
    state: &Shared,
    listing: impl FnOnce(&Book) -> Listing,
    gather: impl FnOnce(&Book) -> (u64, G),
    make: impl FnOnce(u64, G, bool) -> Bytes + Send + 'static,
) -> Response {
    let listing = listing(&state.book());
    let (revision, body) = listing
        .get_or_init(|| async {
            // The revision of what was gathered, which may be newer than the cell's when
            // the registry changed meanwhile: the answer says which it holds.
            let (revision, gathered) = gather(&state.book());
            let warming = state.is_warming();
            let body = off_the_runtime(move || make(revision, gathered, warming)).await;
            (revision, body)
        })
        .await
        .clone();
    listing_response(state, body, revision).await
}

/// Makes a listing on a blocking thread: sorting and writing 100 000 URLs takes tens of
/// milliseconds, which on the runtime's workers would hold up heartbeats behind it.
async fn off_the_runtime(make: impl FnOnce() -> Bytes + Send + 'static) -> Bytes {
    tokio::task::spawn_blocking(make)
        .await
        .unwrap_or_else(|e| Bytes::from(format!("{{\"error\":\"listing: {e}\"}}")))
}

fn json_bytes(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_else(|e| Bytes::from(format!("{{\"error\":\"{e}\"}}")))
}

/// Listings from this size on are written a few at a time (see [`Paced`]).
const LARGE: usize = 256 * 1024;
/// The pieces a large listing is written in: the next one is taken when the connection took
/// the last, so a listing holds its permit until it is nearly all sent.
const PIECE: usize = 64 * 1024;

async fn listing_response(state: &Shared, body: Bytes, revision: u64) -> Response {
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let response = if body.len() < LARGE {
        (StatusCode::OK, json, body).into_response()
    } else {
        // Writing large listings costs CPU that heartbeats need: only a few at a time, and
        // at most `max-listing-rate` bytes a second together; the others wait here, costing
        // nothing.
        match state.large_listings.clone().acquire_owned().await {
            Ok(permit) => (
                StatusCode::OK,
                json,
                axum::body::Body::new(Paced {
                    rest: body,
                    bytes: state.listing_bytes.clone(),
                    due: None,
                    _permit: permit,
                }),
            )
                .into_response(),
            Err(_) => (StatusCode::OK, json, body).into_response(),
        }
    };
    with_index(response, revision)
}

/// A large listing sent in [`PIECE`]s while holding one of the permits large listings
/// share, each piece when the bucket of listing bytes allows.
struct Paced {
    rest: Bytes,
    bytes: Arc<std::sync::Mutex<Bucket>>,
    /// The next piece, taken from the bucket, and when it may go.
    due: Option<(Bytes, std::pin::Pin<Box<tokio::time::Sleep>>)>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.due.is_none() {
            if self.rest.is_empty() {
                return Poll::Ready(None);
            }
            let n = self.rest.len().min(PIECE);
            let piece = self.rest.split_to(n);
            let wait = self
                .bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(n as f64);
            if wait.is_zero() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(piece))));
            }
            self.due = Some((piece, Box::pin(tokio::time::sleep(wait))));
        }
        if let Some((_, wait)) = self.due.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        match self.due.take() {
            Some((piece, _)) => Poll::Ready(Some(Ok(http_body::Frame::data(piece)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.due.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let due = self.due.as_ref().map_or(0, |(piece, _)| piece.len());
        http_body::SizeHint::with_exact((self.rest.len() + due) as u64)
    }
}

/// `GET /srpc/registry`: the alive addresses, comma-joined and sorted, in `Srpc-servers`.
pub(super) async fn compat_get(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_read(&headers)?;
    let now = Instant::now();
    let mut book = state.book();
    book.servers.retain(|_, expires| *expires > now);
    let alive: Vec<&str> = book.servers.keys().map(String::as_str).collect();
    let joined = alive.join(",");
    drop(book);
    match HeaderValue::from_str(&joined) {
        Ok(value) => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(SERVERS_HEADER, value);
            Ok(response)
        }
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored address is not a header value".into(),
        )),
    }
}
