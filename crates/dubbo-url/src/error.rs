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
    #[error("url missing protocol: {}", quote(.url))]
    MissingProtocol {
        /// The whole input.
        url: String,
    },
    /// The text after the last `:` of the authority is not a port number in 0..=65535.
    #[error("invalid port {} in url {}", quote(.port), quote(.url))]
    InvalidPort {
        /// The text that should have been a port.
        port: String,
        /// The whole input.
        url: String,
    },
    /// An IPv6 address outside brackets: `fe80::1` is ambiguous, `[fe80::1]:20880` is not.
    #[error("bare IPv6 host {} in url {}: write it in brackets, as [addr]:port", quote(.host), quote(.url))]
    BareIpv6 {
        /// The host as found.
        host: String,
        /// The whole input.
        url: String,
    },
    /// A bracketed host that is not an IPv6 address, or brackets that do not close.
    #[error("invalid IPv6 host {} in url {}", quote(.host), quote(.url))]
    InvalidIpv6 {
        /// The host as found.
        host: String,
        /// The whole input.
        url: String,
    },
    /// A `%` escape that is cut short or not followed by two hex digits.
    #[error("invalid percent escape at byte {position} of {}", quote(.text))]
    InvalidEscape {
        /// The text being decoded.
        text: String,
        /// Byte offset of the `%`.
        position: usize,
    },
    /// A part of a URL that cannot be written in a Dubbo URL and read back unchanged.
    #[error("{what} cannot be written into a Dubbo URL and read back unchanged: {}", quote(.url))]
    Unrepresentable {
        /// The part at fault, e.g. `parameter "a&b"="1"`.
        what: String,
        /// The URL as it would be written.
        url: String,
    },
    /// A parameter value that does not have the type its reader asked for.
    #[error("parameter {} has value {}, expected {expected}", quote(.key), quote(.value))]
    InvalidParam {
        /// The parameter name.
        key: String,
        /// The value found.
        value: String,
        /// What was expected, e.g. `a boolean`.
        expected: &'static str,
    },
}

/// The longest input quoted whole in a message; longer ones are cut.
pub const MAX_QUOTED: usize = 200;

/// `text` quoted for a message, as `{:?}` does, but an input over [`MAX_QUOTED`] bytes is cut
/// to its first 120 and says how long it was: `"dubbo://…"… (3012 bytes)`. A log line stays
/// readable, and a hostile input cannot make one huge.
pub fn quote(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return format!("{text:?}");
    }
    let mut end = 120;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_are_cut_in_messages() {
        assert_eq!(quote("a.B"), "\"a.B\"");
        let long = format!("dubbo://h:1/a.B?methods={}", "é".repeat(1500));
        let q = quote(&long);
        assert!(q.len() < 160, "{q}");
        assert!(q.ends_with(&format!("… ({} bytes)", long.len())), "{q}");
        let e = Error::InvalidPort {
            port: "x".into(),
            url: long,
        };
        assert!(e.to_string().len() < 220, "{e}");
    }
}
