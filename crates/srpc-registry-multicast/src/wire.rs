//! Dubbo's multicast wire format: one datagram per message, `<verb> <url>\n`.
//!
//! The URL is the decoded `toFullString()`. Java reads datagrams into a 2048-byte buffer, so
//! longer ones are silently cut there; srpc refuses to send them instead.

use std::fmt;

use srpc_registry_kit::Url;

/// The largest datagram Java Dubbo reads whole.
pub const MAX_DATAGRAM: usize = 2048;

/// The longest full URL srpc will announce: `unregister <url>\n` must fit in [`MAX_DATAGRAM`].
pub const MAX_URL_LEN: usize = MAX_DATAGRAM - "unregister ".len() - 1;

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A provider (or consumer) announces a URL.
    Register(Url),
    /// A URL goes away.
    Unregister(Url),
    /// A consumer asks providers matching the URL to announce themselves.
    Subscribe(Url),
    /// A consumer stops listening (Java ignores it on receipt, and so does srpc).
    Unsubscribe(Url),
}

/// Why a received datagram was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Nothing but white space.
    Empty,
    /// The first word is not a verb of the protocol.
    UnknownVerb(String),
    /// The text after the verb is not a Dubbo URL.
    BadUrl {
        /// The text after the verb.
        text: String,
        /// Why it did not parse.
        reason: String,
    },
}

impl Message {
    /// The verb as it stands on the wire.
    pub fn verb(&self) -> &'static str {
        match self {
            Message::Register(_) => "register",
            Message::Unregister(_) => "unregister",
            Message::Subscribe(_) => "subscribe",
            Message::Unsubscribe(_) => "unsubscribe",
        }
    }

    /// The URL the message carries.
    pub fn url(&self) -> &Url {
        match self {
            Message::Register(u)
            | Message::Unregister(u)
            | Message::Subscribe(u)
            | Message::Unsubscribe(u) => u,
        }
    }

    /// The datagram: verb, one space, the full URL, a line feed.
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}\n", self.verb(), self.url().to_full_string()).into_bytes()
    }

    /// Reads a datagram as Java does, leniently: surrounding white space and NUL padding
    /// are ignored, only the first line counts (so CRLF works), and any run of white space
    /// may separate the verb from the URL. White space is what Java's `String.trim` drops
    /// (characters up to U+0020), as for URLs: found by fuzzing, a URL starting with U+0085
    /// (Unicode white space) lost it on the way through `encode` and `decode`.
    pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
        let text = String::from_utf8_lossy(datagram);
        let text = text.trim_matches(|c: char| c <= ' ');
        let line = text
            .split('\n')
            .next()
            .unwrap_or("")
            .trim_matches(|c: char| c <= ' ');
        if line.is_empty() {
            return Err(DecodeError::Empty);
        }
        let blank = |c: char| c <= ' ';
        let (verb, rest) = line.split_once(blank).unwrap_or((line, ""));
        let make: fn(Url) -> Message = match verb {
            "register" => Message::Register,
            "unregister" => Message::Unregister,
            "subscribe" => Message::Subscribe,
            "unsubscribe" => Message::Unsubscribe,
            other => return Err(DecodeError::UnknownVerb(other.chars().take(64).collect())),
        };
        let rest = rest.trim_matches(blank);
        Url::parse_decoded(rest)
            .map(make)
            .map_err(|e| DecodeError::BadUrl {
                text: rest.chars().take(256).collect(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty datagram"),
            DecodeError::UnknownVerb(verb) => write!(f, "unknown verb {verb:?}"),
            DecodeError::BadUrl { text, reason } => write!(f, "bad url {text:?}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn encodes_verb_space_url_lf() {
        let u = url("dubbo://10.0.0.5:20880/a.B?version=1&anyhost=true");
        assert_eq!(
            Message::Register(u.clone()).encode(),
            b"register dubbo://10.0.0.5:20880/a.B?anyhost=true&version=1\n"
        );
        assert_eq!(Message::Unsubscribe(u).encode()[..12], *b"unsubscribe ");
    }

    #[test]
    fn decodes_leniently() {
        let want = Message::Register(url("dubbo://h:1/a.B?x=1"));
        let cases: &[&[u8]] = &[
            b"register dubbo://h:1/a.B?x=1\n",
            b"register dubbo://h:1/a.B?x=1",
            b"register dubbo://h:1/a.B?x=1\r\n",
            b"register   dubbo://h:1/a.B?x=1  \n",
            b"  register\tdubbo://h:1/a.B?x=1\n\0\0\0\0",
            b"register dubbo://h:1/a.B?x=1\nsecond line is ignored\n",
        ];
        for datagram in cases {
            assert_eq!(
                Message::decode(datagram),
                Ok(want.clone()),
                "{:?}",
                String::from_utf8_lossy(datagram)
            );
        }
        assert!(matches!(
            Message::decode(b"unregister dubbo://h:1/a.B"),
            Ok(Message::Unregister(_))
        ));
        assert!(matches!(
            Message::decode(b"subscribe consumer://h/a.B"),
            Ok(Message::Subscribe(_))
        ));
        assert!(matches!(
            Message::decode(b"unsubscribe consumer://h/a.B"),
            Ok(Message::Unsubscribe(_))
        ));
    }

    #[test]
    fn what_decode_accepts_encode_sends_unchanged() {
        // Found by `cargo xtask fuzz` (target `multicast_datagram`): U+0085 is Unicode white
        // space but not Java's; a URL starting with it lost it through encode and decode.
        let datagram = "register \u{85}h:1/a.B?x=1".as_bytes();
        let message = Message::decode(datagram).unwrap();
        assert_eq!(message.url().host(), "\u{85}h");
        assert_eq!(Message::decode(&message.encode()), Ok(message));
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        type IsExpected = fn(&DecodeError) -> bool;
        let cases: &[(&[u8], IsExpected)] = &[
            (b"", |e| *e == DecodeError::Empty),
            (b"\0\0\0 \n", |e| *e == DecodeError::Empty),
            (
                b"hello dubbo://h:1/a.B",
                |e| matches!(e, DecodeError::UnknownVerb(v) if v == "hello"),
            ),
            (b"registered dubbo://h:1/a.B", |e| {
                matches!(e, DecodeError::UnknownVerb(_))
            }),
            (b"register", |e| matches!(e, DecodeError::BadUrl { .. })),
            (b"register dubbo://h:99999/a.B", |e| {
                matches!(e, DecodeError::BadUrl { .. })
            }),
            (b"register dubbo://fe80::1/a.B", |e| {
                matches!(e, DecodeError::BadUrl { .. })
            }),
            (b"\xff\xfe register \xff", |e| {
                matches!(e, DecodeError::UnknownVerb(_))
            }),
        ];
        for (datagram, is_expected) in cases {
            let err = Message::decode(datagram).unwrap_err();
            assert!(
                is_expected(&err),
                "{:?} gave {err}",
                String::from_utf8_lossy(datagram)
            );
        }
    }

    #[test]
    fn the_longest_url_fits_every_verb() {
        assert_eq!(MAX_URL_LEN, 2036);
        let base = "dubbo://h:1/a.B?m=";
        let u = url(&format!("{base}{}", "x".repeat(MAX_URL_LEN - base.len())));
        assert_eq!(u.to_full_string().len(), MAX_URL_LEN);
        for message in [
            Message::Register(u.clone()),
            Message::Unregister(u.clone()),
            Message::Subscribe(u),
        ] {
            assert!(message.encode().len() <= MAX_DATAGRAM);
        }
    }
}
