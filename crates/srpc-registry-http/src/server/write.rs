//! The handlers that change the book: register, heartbeats, deregister, and the
//! `/srpc/registry` compatibility endpoint's POST.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use srpc_registry_kit::Url;
use tokio::time::Instant;
use tracing::debug;

use super::book::{Book, Instance, Lease, Service, Shared};
use super::reply::{
    ApiError, error, json_body, limit, parse_body, parse_instance, parse_publication,
};
use crate::api::{
    ANY_HOLDER, HolderRequest, HolderResponse, InstanceRequest, MIN_TTL, RegisterRequest,
    RegisterResponse, SERVERS_HEADER,
};

pub(super) async fn register(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: RegisterRequest = parse_body(&body)?;
    let limits = &state.config.limits;
    if request.url.len() > limits.url_len {
        return Err(limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "max-url-len",
            limits.url_len,
            format!("the instance URL is {} bytes", request.url.len()),
        ));
    }
    let url = parse_publication(&request.url)?;
    let holder = request.holder.unwrap_or_default();
    if holder == ANY_HOLDER {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("holder {ANY_HOLDER:?} stands for every holder; it can only deregister"),
        ));
    }
    // What was asked, capped by the server's `--ttl`: a client cannot keep a dead instance
    // longer than the operator allows.
    let ttl = request
        .ttl_ms
        .map_or(state.config.ttl, Duration::from_millis)
        .min(state.config.ttl);
    if ttl < MIN_TTL {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "ttl_ms {} is below {} ms",
                ttl.as_millis(),
                MIN_TTL.as_millis()
            ),
        ));
    }
    let key = url.service_key();
    let mut book = state.book();
    let listed = book
        .services
        .get(&key)
        .map_or(0, |service| service.instances.len());
    let is_new = !book
        .services
        .get(&key)
        .is_some_and(|service| service.instances.contains_key(&url));
    let holds = book
        .holders
        .get(&holder)
        .is_some_and(|held| held.contains(&(key.clone(), url.clone())));
    if is_new && book.instances >= limits.instances {
        return Err(limit(
            StatusCode::TOO_MANY_REQUESTS,
            "max-instances",
            limits.instances,
            format!("the registry holds {} instances", book.instances),
        ));
    }
    if is_new && listed >= limits.instances_per_service {
        return Err(limit(
            StatusCode::TOO_MANY_REQUESTS,
            "max-instances-per-service",
            limits.instances_per_service,
            format!("service {key} has {listed} instances"),
        ));
    }
    let held = book.holders.get(&holder).map_or(0, |held| held.len());
    if !holds && held >= limits.instances_per_holder {
        return Err(limit(
            StatusCode::TOO_MANY_REQUESTS,
            "max-instances-per-holder",
            limits.instances_per_holder,
            format!("holder {holder:?} holds {held} instances"),
        ));
    }
    // Everything is checked: from here on nothing can fail half-way. `ttl` is at most the
    // server's, which `ServerConfig::validate` bounded, so the deadline cannot overflow.
    let lease = Lease {
        ttl,
        expires: Instant::now() + ttl,
    };
    let service = book
        .services
        .entry(key.clone())
        .or_insert_with(Service::new);
    let changed = match service.instances.get_mut(&url) {
        Some(instance) => {
            // Equal URLs may still differ in their timestamp: keep the newest form.
            let newer = instance.url.as_full_str() != url.as_full_str();
            instance.url = url.clone();
            instance.holders.insert(holder.clone(), lease);
            newer
        }
        None => {
            let instance = Instance {
                url: url.clone(),
                holders: HashMap::from([(holder.clone(), lease)]),
            };
            service.instances.insert(url.clone(), instance);
            book.instances += 1;
            true
        }
    };
    book.hold(&holder, &key, &url);
    if changed {
        state.changed(&mut book, &key);
    }
    drop(book);
    state.registrations.fetch_add(1, Ordering::Relaxed);
    debug!(backend = "http", service = %key, %url, "registered");
    Ok((
        StatusCode::OK,
        json_body(&RegisterResponse {
            service: key,
            ttl_ms: ttl.as_millis() as u64,
        }),
    )
        .into_response())
}

pub(super) async fn heartbeat(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: InstanceRequest = parse_body(&body)?;
    let url = parse_instance(&request.url)?;
    let key = url.service_key();
    let mut book = state.book();
    let holder = request.holder.unwrap_or_default();
    let Some(lease) = book
        .services
        .get_mut(&key)
        .and_then(|s| s.instances.get_mut(&url))
        .and_then(|i| i.holders.get_mut(&holder))
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown instance {url} (or not registered by this holder): register it again"),
        ));
    };
    lease.expires = Instant::now() + lease.ttl;
    let ttl_ms = lease.ttl.as_millis() as u64;
    drop(book);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        json_body(&RegisterResponse {
            service: key,
            ttl_ms,
        }),
    )
        .into_response())
}

/// Renews every lease of one holder: one request for all of a client's instances, however
/// many services it provides. Always 200: the count tells the holder whether the server
/// still has everything it registered.
pub(super) async fn holder_heartbeat(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: HolderRequest = parse_body(&body)?;
    if request.holder == ANY_HOLDER {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("holder {ANY_HOLDER:?} stands for every holder; it can only deregister"),
        ));
    }
    let now = Instant::now();
    let mut book = state.book();
    let Book {
        services, holders, ..
    } = &mut *book;
    let mut renewed = 0u64;
    let mut shortest: Option<Duration> = None;
    for (key, url) in holders.get(&request.holder).into_iter().flatten() {
        let lease = services
            .get_mut(key)
            .and_then(|s| s.instances.get_mut(url))
            .and_then(|i| i.holders.get_mut(&request.holder));
        if let Some(lease) = lease {
            lease.expires = now + lease.ttl;
            renewed += 1;
            shortest = Some(shortest.map_or(lease.ttl, |t| t.min(lease.ttl)));
        }
    }
    drop(book);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        json_body(&HolderResponse {
            renewed,
            ttl_ms: shortest.map_or(0, |t| t.as_millis() as u64),
        }),
    )
        .into_response())
}

pub(super) async fn deregister(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: InstanceRequest = parse_body(&body)?;
    let url =
        Url::parse(&request.url).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let key = url.service_key();
    let mut book = state.book();
    // Only this holder's lease goes; the instance goes with its last holder.
    let holder = request.holder.unwrap_or_default();
    let mut released = Vec::new();
    let removed = book.services.get_mut(&key).is_some_and(|s| {
        let Some(instance) = s.instances.get_mut(&url) else {
            return false;
        };
        if holder == ANY_HOLDER {
            released.extend(instance.holders.drain().map(|(h, _)| h));
        } else if instance.holders.remove(&holder).is_some() {
            released.push(holder);
        }
        if instance.holders.is_empty() {
            s.instances.remove(&url);
            true
        } else {
            false
        }
    });
    if removed {
        book.instances -= 1;
    }
    for holder in released {
        book.release(&holder, &key, &url);
    }
    if removed {
        state.changed(&mut book, &key);
        debug!(backend = "http", service = %key, %url, "deregistered");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /srpc/registry` with `Srpc-servers: <addr>`: registers or refreshes it.
pub(super) async fn compat_post(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let Some(addr) = headers
        .get(SERVERS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("missing header {SERVERS_HEADER}: <address>"),
        ));
    };
    if addr.is_empty() || addr.contains(',') || addr.len() > 1024 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("invalid address {addr:?} in {SERVERS_HEADER}"),
        ));
    }
    let expires = Instant::now() + state.config.ttl;
    let most = state.config.limits.compat_header;
    let mut book = state.book();
    if !book.servers.contains_key(addr) {
        // The answer of `GET /srpc/registry` is every address, comma-joined, in one header.
        let now = Instant::now();
        let header: usize = book
            .servers
            .iter()
            .filter(|(_, expires)| **expires > now)
            .map(|(addr, _)| addr.len() + 1)
            .sum();
        if header + addr.len() > most {
            return Err(limit(
                StatusCode::TOO_MANY_REQUESTS,
                "max-compat-header",
                most,
                format!(
                    "the {SERVERS_HEADER} answer would be {} bytes",
                    header + addr.len()
                ),
            ));
        }
    }
    book.servers.insert(addr.to_owned(), expires);
    drop(book);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok(StatusCode::OK.into_response())
}
