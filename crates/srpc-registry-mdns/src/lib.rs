//! srpc registry on mDNS / DNS-SD: discovery on a LAN with no server at all, in the standard
//! every operating system speaks.
//!
//! **Work in progress.** This crate holds the parts that need no network: the registry URL
//! ([`MdnsConfig`]: `mdns://local?interface=127.0.0.1&type=_srpc._tcp&session=60000`) and the
//! mapping between Dubbo URLs and DNS-SD instances ([`record`]). The backend on the
//! `mdns-sd` crate, and its `mdns` feature in the facade, come next.

mod cache;
mod config;
pub mod record;
pub mod wire;

pub use crate::config::{DEFAULT_TYPE, Interface, MdnsConfig};

/// The URL scheme of this backend.
pub const SCHEME: &str = "mdns";
