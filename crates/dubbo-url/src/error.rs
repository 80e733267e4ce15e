//! The error type of the `dubbo-url` crate.

/// Everything that can go wrong while parsing, decoding or reading a Dubbo URL.
///
/// Every variant quotes the offending input so that a log line alone says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was empty or only white space.
    #[error("empty url")]
    Empty,
    /// A protocol separator (`://` or `:/`) stands at the very start of the input.
    #[error("url missing protocol: {url:?}")]
    MissingProtocol {
        /// The whole input.
        url: String,
    },
    /// The text after the last `:` of the authority is not a port number in 0..=65535.
    #[error("invalid port {port:?} in url {url:?}")]
    InvalidPort {
        /// The text that should have been a port.
        port: String,
        /// The whole input.
        url: String,
    },
    /// An IPv6 address outside brackets: `fe80::1` is ambiguous, `[fe80::1]:20880` is not.
    #[error("bare IPv6 host {host:?} in url {url:?}: write it in brackets, as [addr]:port")]
    BareIpv6 {
        /// The host as found.
        host: String,
        /// The whole input.
        url: String,
    },
    /// A bracketed host that is not an IPv6 address, or brackets that do not close.
    #[error("invalid IPv6 host {host:?} in url {url:?}")]
    InvalidIpv6 {
        /// The host as found.
        host: String,
        /// The whole input.
        url: String,
    },
    /// A `%` escape that is cut short or not followed by two hex digits.
    #[error("invalid percent escape at byte {position} of {text:?}")]
    InvalidEscape {
        /// The text being decoded.
        text: String,
        /// Byte offset of the `%`.
        position: usize,
    },
    /// A part of a URL that cannot be written in a Dubbo URL and read back unchanged.
    #[error("{what} cannot be written into a Dubbo URL and read back unchanged: {url:?}")]
    Unrepresentable {
        /// The part at fault, e.g. `parameter "a&b"="1"`.
        what: String,
        /// The URL as it would be written.
        url: String,
    },
    /// A parameter value that does not have the type its reader asked for.
    #[error("parameter {key:?} has value {value:?}, expected {expected}")]
    InvalidParam {
        /// The parameter name.
        key: String,
        /// The value found.
        value: String,
        /// What was expected, e.g. `a boolean`.
        expected: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
