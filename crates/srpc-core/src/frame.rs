//! The wire format: a connection preface, then length-prefixed frames (see docs/protocol.md).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::Codec;
use crate::error::{Error, RemoteCode, Result};
use crate::metadata::Metadata;

/// The first four bytes of every preface.
pub const MAGIC: &[u8; 4] = b"SRPC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The default largest frame, in bytes after the length field.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Preface answer: accepted.
pub const ACCEPTED: u8 = 0;
/// Preface answer: the version is not spoken here.
pub const BAD_VERSION: u8 = 1;
/// Preface answer: the codec is not known here.
pub const BAD_CODEC: u8 = 2;
/// Preface answer: the server is at its connection limit; try later or another server.
pub const BUSY: u8 = 3;

/// Preface feature bit: request frames may carry metadata (kind [`REQUEST_META`]). The
/// client offers features in its preface's byte 6; the server answers, in byte 7 of its
/// answer, the ones it takes. Peers older than a feature send and answer 0.
pub const FEATURE_METADATA: u8 = 1;
/// The features this crate speaks.
pub const FEATURES: u8 = FEATURE_METADATA;

/// Frame kinds.
pub const REQUEST: u8 = 1;
/// A successful reply.
pub const RESPONSE: u8 = 2;
/// An error reply.
pub const ERROR: u8 = 3;
/// A call with metadata: a request whose method name is followed by a metadata block
/// (sent only to a server that answered [`FEATURE_METADATA`]).
pub const REQUEST_META: u8 = 4;

/// The client's 8-byte preface: magic, version, codec, the features it offers, a zero.
pub fn preface(codec: Codec) -> [u8; 8] {
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        VERSION,
        codec.to_wire(),
        FEATURES,
        0,
    ]
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A call.
    Request {
        /// Matches the reply to the call.
        seq: u64,
        /// The call's deadline in milliseconds, 0 for none.
        timeout_ms: u32,
        /// `Service.Method`.
        method: String,
        /// The call's metadata (a [`REQUEST_META`] frame when not empty).
        metadata: Metadata,
        /// The codec-encoded argument.
        body: Vec<u8>,
    },
    /// A reply.
    Response {
        /// The call's sequence number.
        seq: u64,
        /// The codec-encoded reply.
        body: Vec<u8>,
    },
    /// An error reply (or, with sequence 0, a connection-level error before closing).
    Error {
        /// The call's sequence number.
        seq: u64,
        /// What kind of error.
        code: RemoteCode,
        /// A message for people.
        message: String,
    },
}

impl Frame {
    /// Encodes the frame with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = match self {
            Frame::Request {
                seq,
                timeout_ms,
                method,
                metadata,
                body,
            } => {
                let mut out = request_head_with(*seq, *timeout_ms, method, metadata, body.len());
                out.extend_from_slice(body);
                out
            }
            Frame::Response { seq, body } => {
                let mut out = response_head(body.len());
                out.extend_from_slice(body);
                set_response_seq(&mut out, *seq);
                out
            }
            Frame::Error { seq, code, message } => {
                let mut out = Vec::with_capacity(15 + message.len());
                out.extend_from_slice(&[0; 4]);
                out.push(ERROR);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&code.to_wire().to_be_bytes());
                out.extend_from_slice(message.as_bytes());
                out
            }
        };
        set_length(&mut out);
        out
    }

    /// Decodes a frame's bytes (after the length prefix).
    pub fn decode(bytes: &[u8]) -> Result<Frame> {
        Frame::decode_owned(bytes.to_vec())
    }

    /// Decodes a frame's bytes (after the length prefix), keeping the buffer as the body:
    /// the common frames cost no copy of their body.
    pub fn decode_owned(mut bytes: Vec<u8>) -> Result<Frame> {
        let malformed = |what: &str| Error::Protocol(format!("malformed frame: {what}"));
        let (&kind, rest) = bytes.split_first().ok_or_else(|| malformed("empty"))?;
        let (seq, rest) = take::<8>(rest).ok_or_else(|| malformed("no sequence number"))?;
        let seq = u64::from_be_bytes(seq);
        match kind {
            REQUEST | REQUEST_META => {
                let (timeout, rest) = take::<4>(rest).ok_or_else(|| malformed("no timeout"))?;
                let (len, rest) = take::<2>(rest).ok_or_else(|| malformed("no method length"))?;
                let len = usize::from(u16::from_be_bytes(len));
                if rest.len() < len {
                    return Err(malformed("method name cut short"));
                }
                let method = std::str::from_utf8(&rest[..len])
                    .map_err(|_| malformed("method name is not UTF-8"))?
                    .to_owned();
                let timeout_ms = u32::from_be_bytes(timeout);
                let mut head = REQUEST_HEAD - 4 + len;
                let metadata = if kind == REQUEST_META {
                    let rest = &rest[len..];
                    let (block_len, rest) =
                        take::<2>(rest).ok_or_else(|| malformed("no metadata length"))?;
                    let block_len = usize::from(u16::from_be_bytes(block_len));
                    let block = rest
                        .get(..block_len)
                        .ok_or_else(|| malformed("metadata cut short"))?;
                    head += 2 + block_len;
                    Metadata::decode(block).map_err(|e| malformed(&e))?
                } else {
                    Metadata::new()
                };
                bytes.drain(..head);
                Ok(Frame::Request {
                    seq,
                    timeout_ms,
                    method,
                    metadata,
                    body: bytes,
                })
            }
            RESPONSE => {
                bytes.drain(..RESPONSE_HEAD - 4);
                Ok(Frame::Response { seq, body: bytes })
            }
            ERROR => {
                let (code, rest) = take::<2>(rest).ok_or_else(|| malformed("no error code"))?;
                Ok(Frame::Error {
                    seq,
                    code: RemoteCode::from_wire(u16::from_be_bytes(code)),
                    message: String::from_utf8_lossy(rest).into_owned(),
                })
            }
            other => Err(malformed(&format!("unknown kind {other}"))),
        }
    }
}

/// Bytes before a request's method name: length, kind, sequence, timeout, name length.
const REQUEST_HEAD: usize = 4 + 1 + 8 + 4 + 2;
/// Bytes before a response's body: length, kind, sequence.
const RESPONSE_HEAD: usize = 4 + 1 + 8;

/// A request frame up to its body, with room for `body` more bytes: the caller appends the
/// body (a codec can encode straight into it) and calls [`set_length`].
pub fn request_head(seq: u64, timeout_ms: u32, method: &str, body: usize) -> Vec<u8> {
    request_head_with(seq, timeout_ms, method, &Metadata::new(), body)
}

/// [`request_head`] with metadata: a [`REQUEST_META`] frame when there is any, a plain
/// [`REQUEST`] otherwise.
pub fn request_head_with(
    seq: u64,
    timeout_ms: u32,
    method: &str,
    metadata: &Metadata,
    body: usize,
) -> Vec<u8> {
    let name = method.as_bytes();
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let name = &name[..usize::from(len)];
    let block = if metadata.is_empty() {
        0
    } else {
        2 + metadata.encoded_len()
    };
    let mut out = Vec::with_capacity(REQUEST_HEAD + name.len() + block + body);
    out.extend_from_slice(&[0; 4]);
    out.push(if metadata.is_empty() {
        REQUEST
    } else {
        REQUEST_META
    });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timeout_ms.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name);
    if !metadata.is_empty() {
        metadata.encode_into(&mut out);
    }
    out
}

/// A response frame up to its body, sequence not yet known, with room for `body` more
/// bytes: append the body, then [`set_response_seq`] and [`set_length`].
pub fn response_head(body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(RESPONSE_HEAD + body);
    out.extend_from_slice(&[0; 4]);
    out.push(RESPONSE);
    out.extend_from_slice(&[0; 8]);
    out
}

/// Writes the sequence number into a frame made by [`response_head`].
pub fn set_response_seq(frame: &mut [u8], seq: u64) {
    if let Some(field) = frame.get_mut(5..RESPONSE_HEAD) {
        field.copy_from_slice(&seq.to_be_bytes());
    }
}

/// Writes the length prefix of a complete frame.
pub fn set_length(frame: &mut [u8]) {
    let len = u32::try_from(frame.len().saturating_sub(4)).unwrap_or(u32::MAX);
    if let Some(field) = frame.get_mut(..4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

fn take<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    if bytes.len() < N {
        return None;
    }
    let (head, rest) = bytes.split_at(N);
    head.try_into().ok().map(|h| (h, rest))
}

/// Reads one frame; `Ok(None)` at a clean end of stream. A frame longer than `max` is a
/// protocol error (the connection must then be closed: the stream is out of step).
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max: u32) -> Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::Protocol(format!("read: {e}"))),
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the maximum of {max}"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    reader
        .read_exact(&mut bytes)
        .await
        .map_err(|e| Error::Protocol(format!("frame cut short: {e}")))?;
    Frame::decode_owned(bytes).map(Some)
}

/// A frame longer than the reader's maximum, read past without keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Its kind.
    pub kind: u8,
    /// Its sequence number.
    pub seq: u64,
    /// Its length (bytes after the length field).
    pub len: u32,
}

/// Reads one frame like [`read_frame`], but reads past a frame longer than `max` instead of
/// failing: its kind and sequence number are kept, the rest is discarded as it arrives (in
/// a small buffer, never all of it), and the stream stays in step. So one oversized call
/// or reply costs its own caller, not the connection every other call shares.
pub async fn read_frame_or_skip<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<std::result::Result<Frame, Skipped>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::Protocol(format!("read: {e}"))),
    }
    let len = u32::from_be_bytes(len);
    if len <= max {
        let mut bytes = vec![0u8; len as usize];
        reader
            .read_exact(&mut bytes)
            .await
            .map_err(|e| Error::Protocol(format!("frame cut short: {e}")))?;
        return Frame::decode_owned(bytes).map(|f| Some(Ok(f)));
    }
    if len < 9 {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the maximum of {max}"
        )));
    }
    let mut head = [0u8; 9];
    reader
        .read_exact(&mut head)
        .await
        .map_err(|e| Error::Protocol(format!("frame cut short: {e}")))?;
    let rest = u64::from(len) - 9;
    let skipped = tokio::io::copy(&mut (&mut *reader).take(rest), &mut tokio::io::sink())
        .await
        .map_err(|e| Error::Protocol(format!("frame cut short: {e}")))?;
    if skipped < rest {
        return Err(Error::Protocol("frame cut short".to_owned()));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[1..]);
    Ok(Some(Err(Skipped {
        kind: head[0],
        seq: u64::from_be_bytes(seq),
        len,
    })))
}

/// The writer half of a connection: takes encoded frames from `frames` and writes them
/// through a buffer, draining every frame already queued before one flush, so that a burst of
/// calls costs one system call instead of one each.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    frames: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut writer = tokio::io::BufWriter::with_capacity(64 * 1024, writer);
    while let Some(bytes) = frames.recv().await {
        writer.write_all(&bytes).await?;
        while let Ok(more) = frames.try_recv() {
            writer.write_all(&more).await?;
        }
        writer.flush().await?;
    }
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Request {
                seq: 7,
                timeout_ms: 2000,
                method: "Foo.Sum".into(),
                metadata: Metadata::new(),
                body: b"[1,2]".to_vec(),
            },
            Frame::Request {
                seq: 8,
                timeout_ms: 0,
                method: "Foo.Sum".into(),
                metadata: Metadata::new()
                    .with("trace-id", "t1")
                    .unwrap()
                    .with("tenant", "acme")
                    .unwrap(),
                body: b"[1,2]".to_vec(),
            },
            Frame::Response {
                seq: u64::MAX,
                body: vec![],
            },
            Frame::Error {
                seq: 0,
                code: RemoteCode::Handler,
                message: "division by zero".into(),
            },
        ];
        for frame in frames {
            let bytes = frame.encode();
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - 4);
            assert_eq!(Frame::decode(&bytes[4..]).unwrap(), frame);
        }
    }

    #[test]
    fn request_layout_is_as_documented() {
        let bytes = Frame::Request {
            seq: 1,
            timeout_ms: 5,
            method: "A.b".into(),
            metadata: Metadata::new(),
            body: b"x".to_vec(),
        }
        .encode();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 19, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 3, b'A', b'.', b'b', b'x'
            ]
        );
        let bytes = Frame::Request {
            seq: 1,
            timeout_ms: 5,
            method: "A.b".into(),
            metadata: Metadata::new().with("k", "v").unwrap(),
            body: b"x".to_vec(),
        }
        .encode();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 26, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 3, b'A', b'.', b'b', 0, 5,
                1, b'k', 0, 1, b'v', b'x'
            ]
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bytes in [
            &[][..],
            &[1],
            &[1, 0, 0],
            &[9, 0, 0, 0, 0, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9, b'x'],
            &[3, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            // Metadata cut short, and a metadata key with an ESC in it.
            &[4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, b'x', 0, 9, 1],
            &[
                4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, b'x', 0, 4, 1, 0x1b, 0, 0,
            ],
        ] {
            assert!(
                matches!(Frame::decode(bytes), Err(Error::Protocol(_))),
                "{bytes:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_is_read_past_and_the_next_one_read() {
        let big = Frame::Request {
            seq: 7,
            timeout_ms: 0,
            method: "A.b".into(),
            metadata: Metadata::new(),
            body: vec![b'x'; 1000],
        }
        .encode();
        let small = Frame::Response {
            seq: 8,
            body: b"ok".to_vec(),
        };
        let bytes = [big, small.encode()].concat();
        let mut stream: &[u8] = &bytes;
        let first = read_frame_or_skip(&mut stream, 100).await.unwrap().unwrap();
        assert_eq!(
            first,
            Err(Skipped {
                kind: REQUEST,
                seq: 7,
                len: 1000 + 19 + 3 - 4
            })
        );
        let second = read_frame_or_skip(&mut stream, 100).await.unwrap().unwrap();
        assert_eq!(second, Ok(small));
        assert!(
            read_frame_or_skip(&mut stream, 100)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_reading_them() {
        let mut stream: &[u8] = &[0, 0, 1, 0, 1, 2, 3];
        let err = read_frame(&mut stream, 255).await.unwrap_err();
        assert!(
            err.to_string().contains("exceeds the maximum of 255"),
            "{err}"
        );
    }
}
