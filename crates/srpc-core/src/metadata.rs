//! Call metadata: key/value headers a call carries beside its argument (a trace id, a
//! tenant, an auth token), and what a handler learns about its call ([`CallContext`]).

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// At most this many entries in one call's metadata.
pub(crate) const MAX_ENTRIES: usize = 64;
/// A key is 1 to this many bytes.
pub(crate) const MAX_KEY: usize = 255;
/// The encoded metadata of one call (keys, values and their lengths) is at most this many
/// bytes.
pub(crate) const MAX_ENCODED: usize = u16::MAX as usize;

/// Key/value headers of a call, in the order they were added. Keys are lower-case ASCII
/// (`a-z`, `0-9`, `-`, `_`, `.`; upper case is lowered when added), at most 255 bytes;
/// values are UTF-8 text. A key may appear more than once. A call's metadata encodes to at
/// most 64 KiB and 64 entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    /// No entries.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Adds an entry. Fails, naming the key, for a key that is empty, too long or holds
    /// other characters, a value with control characters, or when the metadata would
    /// exceed its limits.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<String>) -> Result<()> {
        let key = key.as_ref().to_ascii_lowercase();
        let value = value.into();
        let bad = |why: &str| Err(Error::Codec(format!("metadata key {key:?}: {why}")));
        if key.is_empty() || key.len() > MAX_KEY {
            return bad("a key is 1 to 255 bytes");
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        {
            return bad("a key holds only a-z, 0-9, '-', '_' and '.'");
        }
        if value.chars().any(char::is_control) {
            return bad("the value holds a control character");
        }
        if self.entries.len() >= MAX_ENTRIES {
            return bad("more than 64 entries");
        }
        if self.encoded_len() + 3 + key.len() + value.len() > MAX_ENCODED {
            return bad("the metadata would exceed 64 KiB");
        }
        self.entries.push((key, value));
        Ok(())
    }

    /// With an entry added ([`Metadata::insert`]).
    pub fn with(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Result<Metadata> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// The first value of `key` (compared without case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of the encoded block: per entry `key_len: u8`, key, `value_len: u16`, value.
    pub(crate) fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| 3 + k.len() + v.len())
            .sum()
    }

    /// Appends the block's length (`u16`) and the block.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.encoded_len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        for (key, value) in &self.entries {
            out.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// Reads a block (without its length prefix), checking every entry as
    /// [`Metadata::insert`] does: a peer's metadata is as untrusted as its argument.
    pub(crate) fn decode(mut block: &[u8]) -> std::result::Result<Metadata, String> {
        let mut metadata = Metadata::new();
        while let Some((&key_len, rest)) = block.split_first() {
            let key_len = usize::from(key_len);
            if rest.len() < key_len + 2 {
                return Err("metadata entry cut short".into());
            }
            let (key, rest) = rest.split_at(key_len);
            let (value_len, rest) = rest.split_at(2);
            let value_len = usize::from(u16::from_be_bytes([value_len[0], value_len[1]]));
            if rest.len() < value_len {
                return Err("metadata value cut short".into());
            }
            let (value, rest) = rest.split_at(value_len);
            let key = std::str::from_utf8(key).map_err(|_| "metadata key is not UTF-8")?;
            let value = std::str::from_utf8(value).map_err(|_| "metadata value is not UTF-8")?;
            metadata.insert(key, value).map_err(|e| e.to_string())?;
            block = rest;
        }
        Ok(metadata)
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// What a handler knows about its call ([`Server::handle_with_context`](crate::Server::handle_with_context)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallContext {
    /// The caller's address (for TLS connections too).
    pub peer: SocketAddr,
    /// When the caller stops waiting: the server cancels the handler then. `None` for a
    /// call without a deadline.
    pub deadline: Option<Instant>,
    /// The call's metadata (empty from clients older than metadata).
    pub metadata: Metadata,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn metadata_round_trips_and_checks_what_it_reads() {
        let m = Metadata::new()
            .with("Trace-Id", "abc")
            .unwrap()
            .with("tenant", "acme")
            .unwrap()
            .with("tenant", "other")
            .unwrap();
        assert_eq!(m.get("trace-id"), Some("abc"));
        assert_eq!(m.get_all("TENANT").collect::<Vec<_>>(), ["acme", "other"]);
        let mut bytes = Vec::new();
        m.encode_into(&mut bytes);
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            bytes.len() - 2
        );
        assert_eq!(Metadata::decode(&bytes[2..]).unwrap(), m);

        for (key, value) in [("", "x"), ("a b", "x"), ("k", "a\nb"), ("ключ", "x")] {
            assert!(
                Metadata::new().with(key, value).is_err(),
                "{key:?} {value:?}"
            );
        }
        let mut full = Metadata::new();
        for i in 0..MAX_ENTRIES {
            full.insert(format!("k{i}"), "v").unwrap();
        }
        assert!(full.insert("one-more", "v").is_err());
        assert!(Metadata::new().with("big", "x".repeat(70_000)).is_err());

        // Malformed blocks are errors, never panics.
        for block in [&[3u8, b'a'][..], &[1, b'a', 0], &[1, b'a', 0, 5, b'x']] {
            assert!(Metadata::decode(block).is_err(), "{block:?}");
        }
        assert_eq!(
            Metadata::decode(&[1, b'A', 0, 0]).unwrap().get("a"),
            Some(""),
            "an upper-case key from a peer is lowered, as insert does"
        );
        assert!(Metadata::decode(&[1, 0x1b, 0, 0]).is_err(), "ESC in a key");
    }
}
