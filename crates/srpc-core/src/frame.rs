//! The wire format: a connection preface, then length-prefixed frames (see docs/protocol.md).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::Codec;
use crate::error::{Error, RemoteCode, Result};

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

/// Frame kinds.
pub const REQUEST: u8 = 1;
/// A successful reply.
pub const RESPONSE: u8 = 2;
/// An error reply.
pub const ERROR: u8 = 3;

/// The 8-byte preface: magic, version, codec (client) or status (server answer), zeros.
pub fn preface(codec: Codec) -> [u8; 8] {
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        VERSION,
        codec.to_wire(),
        0,
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
        let mut out = vec![0u8; 4];
        match self {
            Frame::Request {
                seq,
                timeout_ms,
                method,
                body,
            } => {
                out.push(REQUEST);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&timeout_ms.to_be_bytes());
                let name = method.as_bytes();
                let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&name[..usize::from(len)]);
                out.extend_from_slice(body);
            }
            Frame::Response { seq, body } => {
                out.push(RESPONSE);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(body);
            }
            Frame::Error { seq, code, message } => {
                out.push(ERROR);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&code.to_wire().to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
        let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
        out[..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// Decodes a frame's bytes (after the length prefix).
    pub fn decode(bytes: &[u8]) -> Result<Frame> {
        let malformed = |what: &str| Error::Protocol(format!("malformed frame: {what}"));
        let (&kind, rest) = bytes.split_first().ok_or_else(|| malformed("empty"))?;
        let (seq, rest) = take::<8>(rest).ok_or_else(|| malformed("no sequence number"))?;
        let seq = u64::from_be_bytes(seq);
        match kind {
            REQUEST => {
                let (timeout, rest) = take::<4>(rest).ok_or_else(|| malformed("no timeout"))?;
                let (len, rest) = take::<2>(rest).ok_or_else(|| malformed("no method length"))?;
                let len = usize::from(u16::from_be_bytes(len));
                if rest.len() < len {
                    return Err(malformed("method name cut short"));
                }
                let method = std::str::from_utf8(&rest[..len])
                    .map_err(|_| malformed("method name is not UTF-8"))?
                    .to_owned();
                Ok(Frame::Request {
                    seq,
                    timeout_ms: u32::from_be_bytes(timeout),
                    method,
                    body: rest[len..].to_vec(),
                })
            }
            RESPONSE => Ok(Frame::Response {
                seq,
                body: rest.to_vec(),
            }),
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
    Frame::decode(&bytes).map(Some)
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
            body: b"x".to_vec(),
        }
        .encode();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 19, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 3, b'A', b'.', b'b', b'x'
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
        ] {
            assert!(
                matches!(Frame::decode(bytes), Err(Error::Protocol(_))),
                "{bytes:?}"
            );
        }
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
