//! The wire between a plugin worker and the daemon: length-prefixed frames on a pipe.
//!
//! A frame is a 5-byte header, `u32` little-endian payload length then a `u8` tag, followed by
//! the payload. Tags: 1 hello, 2 item, 3 note, 4 error, 5 done, 6 violation, 7 unseen (see
//! [`Tag`]); item and unseen payloads are the plugin's JSON as it encoded it. Payloads are capped at [`MAX_PAYLOAD`] so a misbehaving plugin cannot make the
//! daemon allocate without bound. This module knows the encoding and nothing else: the worker
//! writes frames with [`write_frame`], the supervisor reads them with [`read_frame`].

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest payload a frame may carry (4 MiB). A plugin record bigger than this is refused by
/// the worker and fails the scan with a protocol violation.
pub const MAX_PAYLOAD: usize = 4 << 20;

/// Size of the frame header: payload length (u32 LE) and tag (u8).
pub const HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// JSON [`PluginInfo`]: the first frame, sent once the library is loaded and checked.
    Hello = 1,
    /// An item record as the plugin encoded it (JSON, decoded by the daemon).
    Item = 2,
    /// A coverage note (UTF-8).
    Note = 3,
    /// The plugin's failure message (UTF-8).
    Error = 4,
    /// The scan returned: `i32` LE return code, `u64` LE number of items sent.
    Done = 5,
    /// The worker detected a protocol violation or could not load the plugin (UTF-8 reason).
    /// Always the last frame.
    Violation = 6,
    /// An unseen record as the plugin encoded it (JSON `{"key", "reason"}`, decoded by the
    /// daemon): a subtree the scan could not see.
    Unseen = 7,
}

impl Tag {
    fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Hello,
            2 => Tag::Item,
            3 => Tag::Note,
            4 => Tag::Error,
            5 => Tag::Done,
            6 => Tag::Violation,
            7 => Tag::Unseen,
            _ => return None,
        })
    }
}

/// The plugin's identity, from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    /// Attribute names whose changes are noise by nature (for example `atime`).
    #[serde(default)]
    pub volatile_attributes: Vec<String>,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(PluginInfo),
    /// Raw item JSON, not yet decoded.
    Item(Vec<u8>),
    Note(String),
    Error(String),
    Done {
        rc: i32,
        items: u64,
    },
    Violation(String),
    /// Raw unseen-record JSON, not yet decoded.
    Unseen(Vec<u8>),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("reading from the worker failed: {0}")]
    Io(#[from] io::Error),
    #[error("frame too large: {len} bytes, the maximum is {MAX_PAYLOAD}")]
    TooLarge { len: usize },
    #[error("truncated frame: the stream ended {missing} bytes early")]
    Truncated { missing: usize },
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    #[error("bad {tag:?} frame: {reason}")]
    BadPayload { tag: Tag, reason: String },
}

/// Encodes a frame header.
pub fn header(tag: Tag, len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len });
    }
    let n = (len as u32).to_le_bytes();
    Ok([n[0], n[1], n[2], n[3], tag as u8])
}

/// Writes one frame. Refuses (without writing anything) a payload over [`MAX_PAYLOAD`].
pub fn write_frame<W: Write>(w: &mut W, tag: Tag, payload: &[u8]) -> Result<(), FrameError> {
    w.write_all(&header(tag, payload.len())?)?;
    w.write_all(payload)?;
    Ok(())
}

/// Encodes the payload of a [`Tag::Done`] frame.
pub fn done_payload(rc: i32, items: u64) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&rc.to_le_bytes());
    p[4..].copy_from_slice(&items.to_le_bytes());
    p
}

/// Encodes the payload of a [`Tag::Hello`] frame.
pub fn hello_payload(info: &PluginInfo) -> Vec<u8> {
    serde_json::to_vec(info).unwrap_or_default()
}

/// Reads one frame. `Ok(None)` is a clean end of stream (at a frame boundary). Not
/// cancel-safe: dropping the future mid-frame loses the stream position.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(r, &mut head).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            missing: HEADER_LEN - got,
        });
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len });
    }
    let tag = Tag::from_u8(head[4]).ok_or(FrameError::UnknownTag(head[4]))?;
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload).await?;
    if got < len {
        return Err(FrameError::Truncated { missing: len - got });
    }
    decode(tag, payload).map(Some)
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn decode(tag: Tag, payload: Vec<u8>) -> Result<Frame, FrameError> {
    let text = |payload: Vec<u8>| {
        String::from_utf8(payload).map_err(|_| FrameError::BadPayload {
            tag,
            reason: "text is not valid UTF-8".to_owned(),
        })
    };
    Ok(match tag {
        Tag::Hello => {
            Frame::Hello(
                serde_json::from_slice(&payload).map_err(|e| FrameError::BadPayload {
                    tag,
                    reason: e.to_string(),
                })?,
            )
        }
        Tag::Item => Frame::Item(payload),
        Tag::Unseen => Frame::Unseen(payload),
        Tag::Note => Frame::Note(text(payload)?),
        Tag::Error => Frame::Error(text(payload)?),
        Tag::Violation => Frame::Violation(text(payload)?),
        Tag::Done => {
            let p: [u8; 12] =
                payload
                    .as_slice()
                    .try_into()
                    .map_err(|_| FrameError::BadPayload {
                        tag,
                        reason: format!("expected 12 bytes, got {}", payload.len()),
                    })?;
            let rc = i32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            let mut items = [0u8; 8];
            items.copy_from_slice(&p[4..]);
            Frame::Done {
                rc,
                items: u64::from_le_bytes(items),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(mut bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = read_frame(&mut bytes).await? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn wire_format_is_pinned() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, b"hi").unwrap();
        assert_eq!(buf, [2, 0, 0, 0, 3, b'h', b'i']);
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Unseen, b"{}").unwrap();
        assert_eq!(buf, [2, 0, 0, 0, 7, b'{', b'}']);
        let tags = [
            Tag::Hello,
            Tag::Item,
            Tag::Note,
            Tag::Error,
            Tag::Done,
            Tag::Violation,
            Tag::Unseen,
        ];
        for (n, tag) in (1u8..).zip(tags) {
            assert_eq!(tag as u8, n);
            assert_eq!(Tag::from_u8(n), Some(tag));
        }
        assert_eq!(Tag::from_u8(8), None);
        assert_eq!(
            done_payload(-1, 2),
            [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let info = PluginInfo {
            name: "files".into(),
            version: "1.0".into(),
            volatile_attributes: vec!["atime".into()],
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Hello, &hello_payload(&info)).unwrap();
        write_frame(&mut buf, Tag::Item, br#"{"key":"k"}"#).unwrap();
        write_frame(&mut buf, Tag::Note, "permission denied: /x".as_bytes()).unwrap();
        write_frame(&mut buf, Tag::Error, b"boom").unwrap();
        write_frame(&mut buf, Tag::Violation, b"frame too large").unwrap();
        write_frame(&mut buf, Tag::Unseen, br#"{"key":"/x","reason":"r"}"#).unwrap();
        write_frame(&mut buf, Tag::Done, &done_payload(1, 7)).unwrap();
        let frames = read_all(&buf).await.unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Hello(info),
                Frame::Item(br#"{"key":"k"}"#.to_vec()),
                Frame::Note("permission denied: /x".into()),
                Frame::Error("boom".into()),
                Frame::Violation("frame too large".into()),
                Frame::Unseen(br#"{"key":"/x","reason":"r"}"#.to_vec()),
                Frame::Done { rc: 1, items: 7 },
            ]
        );
    }

    #[tokio::test]
    async fn max_size_is_enforced_both_ways() {
        let big = vec![b'x'; MAX_PAYLOAD + 1];
        let mut buf = Vec::new();
        assert!(matches!(
            write_frame(&mut buf, Tag::Item, &big),
            Err(FrameError::TooLarge { len }) if len == MAX_PAYLOAD + 1
        ));
        assert!(buf.is_empty(), "nothing written for a refused frame");
        // Exactly the maximum is fine.
        write_frame(&mut buf, Tag::Item, &big[..MAX_PAYLOAD]).unwrap();
        assert_eq!(read_all(&buf).await.unwrap().len(), 1);
        // A reader never allocates for a header announcing more than the maximum.
        let mut hostile = ((MAX_PAYLOAD + 1) as u32).to_le_bytes().to_vec();
        hostile.push(Tag::Item as u8);
        let err = read_all(&hostile).await.unwrap_err();
        assert!(err.to_string().starts_with("frame too large"), "{err}");
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, b"hello").unwrap();
        for cut in 1..buf.len() {
            let err = read_all(&buf[..cut]).await.unwrap_err();
            assert!(
                matches!(err, FrameError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bad_payloads_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, &[0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_all(&buf).await,
            Err(FrameError::BadPayload { tag: Tag::Note, .. })
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Done, &[1, 2, 3]).unwrap();
        assert!(matches!(
            read_all(&buf).await,
            Err(FrameError::BadPayload { tag: Tag::Done, .. })
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Hello, b"{").unwrap();
        assert!(matches!(
            read_all(&buf).await,
            Err(FrameError::BadPayload {
                tag: Tag::Hello,
                ..
            })
        ));
        assert!(matches!(
            read_all(&[0, 0, 0, 0, 99]).await,
            Err(FrameError::UnknownTag(99))
        ));
    }
}
