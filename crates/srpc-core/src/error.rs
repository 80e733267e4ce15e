//! The error type of srpc calls.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a call failed, and so whether trying another endpoint can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Opening the connection took longer than the connect timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The address.
        addr: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The connection closed (or broke) before the answer came.
    #[error("connection to {addr} closed: {reason}")]
    Closed {
        /// The peer's address.
        addr: String,
        /// What ended it.
        reason: String,
    },
    /// The call's deadline passed.
    #[error("{method} timed out after {after:?}")]
    Timeout {
        /// The method.
        method: String,
        /// The deadline.
        after: Duration,
    },
    /// The argument could not be encoded or the reply decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The server answered with an error.
    #[error("{method}: remote {code} error: {message}")]
    Remote {
        /// The method.
        method: String,
        /// What kind of error.
        code: RemoteCode,
        /// The server's message.
        message: String,
    },
    /// The peer broke the protocol (bad preface, malformed or oversized frame).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The call's frame is larger than the connection's maximum frame: it was refused before
    /// anything was written, and no other endpoint would take it either.
    #[error(
        "{method}: the request is {size} bytes, over the maximum frame of {limit} bytes \
         (send less, or raise the limit on both server and client)"
    )]
    TooLarge {
        /// The method.
        method: String,
        /// The frame's length (bytes after the length field).
        size: usize,
        /// The maximum frame, bytes after the length field.
        limit: u32,
    },
    /// The server cannot take what this call needs (metadata, for a server older than it):
    /// nothing was sent. Retryable: another endpoint may take it.
    #[error("{addr} cannot take {what}")]
    Unsupported {
        /// The server.
        addr: String,
        /// What it cannot take.
        what: &'static str,
    },
    /// The reply is larger than this client's maximum frame: it was read past and dropped,
    /// and the connection stays open for the other calls.
    #[error(
        "{method}: the reply is {size} bytes, over this client's maximum frame of {limit} bytes \
         (raise ClientOptions::max_frame, or ask for less)"
    )]
    ReplyTooLarge {
        /// The method.
        method: String,
        /// The frame's length (bytes after the length field).
        size: u32,
        /// This client's maximum frame.
        limit: u32,
    },
}

/// The kinds of error a server sends in an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteCode {
    /// No handler is registered under that name.
    NotFound,
    /// The argument could not be decoded.
    BadRequest,
    /// The handler itself returned an error.
    Handler,
    /// The handler did not finish within the call's deadline.
    DeadlineExceeded,
    /// The server failed otherwise.
    Internal,
    /// The server is shutting down and takes no new calls.
    ShuttingDown,
    /// A code this version does not know.
    Other(u16),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the call may succeed on another endpoint, or on a new connection: connection
    /// failures, broken connections, protocol errors and a server shutting down. Errors
    /// returned by a handler, bad arguments, requests or replies over the frame limit and
    /// deadlines are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Closed { .. }
            | Error::Unsupported { .. }
            | Error::Protocol(_) => true,
            Error::Remote { code, .. } => matches!(code, RemoteCode::ShuttingDown),
            Error::Timeout { .. }
            | Error::Codec(_)
            | Error::TooLarge { .. }
            | Error::ReplyTooLarge { .. } => false,
        }
    }

    /// Whether the error was returned by the remote handler (an application error).
    pub fn is_handler_error(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                code: RemoteCode::Handler,
                ..
            }
        )
    }
}

impl RemoteCode {
    /// The number on the wire.
    pub fn to_wire(self) -> u16 {
        match self {
            RemoteCode::NotFound => 1,
            RemoteCode::BadRequest => 2,
            RemoteCode::Handler => 3,
            RemoteCode::DeadlineExceeded => 4,
            RemoteCode::Internal => 5,
            RemoteCode::ShuttingDown => 6,
            RemoteCode::Other(n) => n,
        }
    }

    /// The code of a number on the wire.
    pub fn from_wire(n: u16) -> RemoteCode {
        match n {
            1 => RemoteCode::NotFound,
            2 => RemoteCode::BadRequest,
            3 => RemoteCode::Handler,
            4 => RemoteCode::DeadlineExceeded,
            5 => RemoteCode::Internal,
            6 => RemoteCode::ShuttingDown,
            n => RemoteCode::Other(n),
        }
    }
}

impl fmt::Display for RemoteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteCode::NotFound => f.write_str("not-found"),
            RemoteCode::BadRequest => f.write_str("bad-request"),
            RemoteCode::Handler => f.write_str("handler"),
            RemoteCode::DeadlineExceeded => f.write_str("deadline-exceeded"),
            RemoteCode::Internal => f.write_str("internal"),
            RemoteCode::ShuttingDown => f.write_str("shutting-down"),
            RemoteCode::Other(n) => write!(f, "code-{n}"),
        }
    }
}

/// `text` cut to at most about `max` bytes for a message: the head and the tail kept (a
/// serde error keeps its "at line 1 column N"), the middle replaced by `…(N bytes)…`, at
/// character boundaries. A peer's argument must not come back whole in an error.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let tail_len = max / 4;
    let mut head = max.saturating_sub(tail_len);
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - tail_len;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}…({} bytes)…{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_head_and_tail_within_the_limit() {
        assert_eq!(shorten("short", 200), "short");
        let long = format!(
            "invalid type: string \"{}\", expected u64 at line 1 column 100002",
            "é".repeat(50_000)
        );
        let cut = shorten(&long, 200);
        assert!(cut.len() < 240, "{}", cut.len());
        assert!(cut.starts_with("invalid type: string"), "{cut}");
        assert!(cut.ends_with("at line 1 column 100002"), "{cut}");
        assert!(cut.contains("bytes)…"), "{cut}");
    }
}
