//! Writing a [`Url`]: Java's `toFullString()` byte for byte, the encoded form, and
//! [`Url::validate`], the check that what is written reads back unchanged.

use std::cmp::Ordering;
use std::fmt;

use super::parse::check_host;
use super::{Params, Url};
use crate::codec;
use crate::error::{Error, Result};

impl Url {
    /// Java's `toFullString()`: protocol, user info, host, port, path and parameters sorted by
    /// Java string order, values trimmed, nothing escaped.
    pub fn to_full_string(&self) -> String {
        self.as_full_str().to_owned()
    }

    /// [`Url::to_full_string`] without a copy: made once per URL (on first use) and shared by
    /// its clones. Sorting or keying many URLs by it costs no formatting.
    pub fn as_full_str(&self) -> &str {
        self.inner.full.get_or_init(|| {
            let mut text =
                String::with_capacity(self.inner.buf.len() + 16 + 2 * self.inner.params.len());
            // Writing to a String cannot fail.
            let _ = self.write_to(&mut text);
            text.into_boxed_str()
        })
    }

    /// The encoded form, as ZooKeeper child names carry it: `encode(to_full_string())`.
    pub fn to_encoded_string(&self) -> String {
        codec::encode(&self.to_full_string())
    }

    /// Checks that this URL reads back unchanged after [`Url::to_full_string`]: no parameter
    /// name is empty or holds `&`, `;` or `=`, no value holds `&` or `;`, no path holds `?` or
    /// `#`, and the host is not a bare IPv6 address. Registries call this before writing.
    pub fn validate(&self) -> Result<()> {
        let url = || self.to_full_string();
        for (key, value) in self.params() {
            if key.is_empty()
                || key.trim() != key
                || key.contains(['&', ';', '=', '#'])
                || value.contains(['&', ';'])
            {
                return Err(Error::Unrepresentable {
                    what: format!("parameter {key:?}={value:?}"),
                    url: url(),
                });
            }
        }
        if self.path().contains(['?', '#']) {
            return Err(Error::Unrepresentable {
                what: format!("path {:?}", self.path()),
                url: url(),
            });
        }
        if self.protocol().contains([':', '/', '?', '#', '@']) {
            return Err(Error::Unrepresentable {
                what: format!("protocol {:?}", self.protocol()),
                url: url(),
            });
        }
        if self.username().contains([':', '@', '/', '?', '#'])
            || self.password().contains(['/', '?', '#'])
        {
            return Err(Error::Unrepresentable {
                what: "user info".to_owned(),
                url: url(),
            });
        }
        check_host(self.host(), &url())
    }

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if !self.protocol().is_empty() {
            out.write_str(self.protocol())?;
            out.write_str("://")?;
        }
        if !self.username().is_empty() {
            out.write_str(self.username())?;
            if !self.password().is_empty() {
                out.write_char(':')?;
                out.write_str(self.password())?;
            }
            out.write_char('@')?;
        }
        out.write_str(self.host())?;
        if self.port() > 0 {
            write!(out, ":{}", self.port())?;
        }
        if !self.path().is_empty() {
            out.write_char('/')?;
            out.write_str(self.path())?;
        }
        let mut sep = '?';
        for (key, value) in java_sorted(self.params()) {
            if key.is_empty() {
                continue;
            }
            out.write_char(sep)?;
            out.write_str(key)?;
            out.write_char('=')?;
            out.write_str(value.trim_matches(|c: char| c <= ' '))?;
            sep = '&';
        }
        Ok(())
    }
}

/// Compares two strings as Java's `String.compareTo` does: by UTF-16 code units.
///
/// This equals byte order except where a character above U+FFFF meets one in
/// U+E000..=U+FFFF, which UTF-16 orders the other way round.
pub fn java_cmp(a: &str, b: &str) -> Ordering {
    for (ca, cb) in a.chars().zip(b.chars()) {
        if ca != cb {
            let mut ua = [0u16; 2];
            let mut ub = [0u16; 2];
            return ca.encode_utf16(&mut ua).cmp(&cb.encode_utf16(&mut ub));
        }
    }
    a.chars().count().cmp(&b.chars().count())
}

fn java_sorted(params: Params<'_>) -> Vec<(&str, &str)> {
    let mut entries: Vec<_> = params.collect();
    // Byte order already equals Java order unless a key has a character at or above U+E000.
    if entries
        .iter()
        .any(|(k, _)| k.chars().any(|c| c >= '\u{E000}'))
    {
        entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    }
    entries
}
