//! The Apache Dubbo URL model: parse, format, encode and match registry records,
//! byte-compatible with what Java Dubbo and dubbo-go write.
//!
//! Every srpc registry stores and exchanges [`Url`]s. This crate does no I/O and never panics
//! on input: every malformed URL or escape is an [`Error`] that quotes the text.
//!
//! ```
//! use dubbo_url::{Url, decode, encode, is_match};
//!
//! let provider: Url = "dubbo://10.0.0.5:20880/com.acme.Echo?side=provider&interface=com.acme.Echo"
//!     .parse()?;
//! // ZooKeeper stores the encoded full string as the child name…
//! let node = encode(&provider.to_full_string());
//! assert!(node.starts_with("dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.acme.Echo%3F"));
//! // …and both forms parse to the same URL.
//! assert_eq!(Url::parse(&node)?, provider);
//! assert_eq!(decode(&node)?, provider.to_full_string());
//!
//! let consumer: Url = "consumer://10.0.0.9/com.acme.Echo?category=providers".parse()?;
//! assert!(is_match(&consumer, &provider));
//! # Ok::<(), dubbo_url::Error>(())
//! ```

mod codec;
mod error;
mod matching;
mod url;

pub use crate::codec::{decode, encode};
pub use crate::error::{Error, MAX_QUOTED, Result, quote};
pub use crate::matching::{is_match, is_match_category};
pub use crate::url::{
    ANY_VALUE, DEFAULT_CATEGORY, EMPTY_PROTOCOL, Params, ProviderUrl, TIMESTAMP_KEY, Url,
    UrlBuilder, java_cmp,
};
