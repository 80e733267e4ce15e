//! The codecs a connection can use for arguments and replies.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How arguments and replies are encoded, chosen per connection in its preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// JSON (serde_json): readable, the default.
    #[default]
    Json,
    /// A compact binary encoding (postcard: varints, no field names). Both sides must use
    /// the same Rust types.
    Binary,
}

impl Codec {
    /// The byte that names the codec in the preface.
    pub fn to_wire(self) -> u8 {
        match self {
            Codec::Json => 0,
            Codec::Binary => 1,
        }
    }

    /// The codec a preface byte names.
    pub fn from_wire(byte: u8) -> Option<Codec> {
        match byte {
            0 => Some(Codec::Json),
            1 => Some(Codec::Binary),
            _ => None,
        }
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Json => {
                serde_json::to_vec(value).map_err(|e| Error::Codec(format!("json encode: {e}")))
            }
            Codec::Binary => postcard::to_allocvec(value)
                .map_err(|e| Error::Codec(format!("binary encode: {e}"))),
        }
    }

    /// Encodes a value after the bytes already in `out` (a frame's header), so that a frame
    /// is built in one buffer.
    pub fn encode_into<T: Serialize + ?Sized>(self, value: &T, out: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Codec::Json => {
                let mut out = out;
                serde_json::to_writer(&mut out, value)
                    .map_err(|e| Error::Codec(format!("json encode: {e}")))?;
                Ok(out)
            }
            Codec::Binary => postcard::to_extend(value, out)
                .map_err(|e| Error::Codec(format!("binary encode: {e}"))),
        }
    }

    /// Decodes a value.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        match self {
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| Error::Codec(format!("json decode: {e}")))
            }
            Codec::Binary => {
                postcard::from_bytes(bytes).map_err(|e| Error::Codec(format!("binary decode: {e}")))
            }
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Codec, String> {
        match s {
            "json" => Ok(Codec::Json),
            "binary" => Ok(Codec::Binary),
            other => Err(format!("unknown codec {other:?}: use json or binary")),
        }
    }
}
