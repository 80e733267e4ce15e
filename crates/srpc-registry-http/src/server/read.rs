//! The handlers that read the book, each a long-poll when given `?index=N`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::book::{Instance, Service, Shared, Watching};
use super::reply::{ApiError, error, json_body, with_index};
use crate::api::{
    InstancesResponse, MAX_WAIT, SERVERS_HEADER, ServiceResponse, ServiceSummary, ServicesResponse,
};

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
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    let revision = {
        let mut book = state.book();
        book.services
            .entry(key.clone())
            .or_insert_with(|| Service {
                revision: watch::Sender::new(0),
                instances: HashMap::new(),
            })
            .revision
            .subscribe()
    };
    long_poll(&state, revision, watch).await;
    let book = state.book();
    let (revision, instances) = match book.services.get(&key) {
        Some(service) => (
            *service.revision.borrow(),
            sorted(service.instances.values()),
        ),
        None => (0, Vec::new()),
    };
    drop(book);
    let body = json_body(&ServiceResponse {
        service: key,
        revision,
        instances,
    });
    Ok(with_index((StatusCode::OK, body).into_response(), revision))
}

pub(super) async fn list_instances(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    long_poll(&state, state.revision.subscribe(), watch).await;
    let book = state.book();
    let revision = book.revision;
    let instances = sorted(book.services.values().flat_map(|s| s.instances.values()));
    drop(book);
    Ok(with_index(
        (
            StatusCode::OK,
            json_body(&InstancesResponse {
                revision,
                instances,
            }),
        )
            .into_response(),
        revision,
    ))
}

pub(super) async fn list_services(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    long_poll(&state, state.revision.subscribe(), watch).await;
    let book = state.book();
    let revision = book.revision;
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
    drop(book);
    Ok(with_index(
        (
            StatusCode::OK,
            json_body(&ServicesResponse { revision, services }),
        )
            .into_response(),
        revision,
    ))
}

pub(super) fn sorted<'a>(instances: impl Iterator<Item = &'a Instance>) -> Vec<String> {
    let mut urls: Vec<String> = instances.map(|i| i.url.to_full_string()).collect();
    urls.sort();
    urls
}

/// `GET /srpc/registry`: the alive addresses, comma-joined and sorted, in `Srpc-servers`.
pub(super) async fn compat_get(State(state): State<Arc<Shared>>) -> Result<Response, ApiError> {
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
