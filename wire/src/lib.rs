//! The wire between `vigild` and `vigil-worker`: length-prefixed frames, encoded and decoded
//! here and nowhere else. No I/O: the worker writes with blocking pipes, the daemon reads with
//! tokio, both through these functions, so the two sides cannot disagree on the format.
//!
//! A frame is a 5-byte header, `u32` little-endian payload length then a `u8` tag, followed by
//! the payload. Worker → daemon: 8 worker hello (always first), 1 plugin hello, 2 item, 3
//! note, 4 error, 5 done, 6 violation, 7 unseen. Daemon → worker: 9 config (once, right
//! after the worker's hello; the daemon then keeps the worker's stdin open, and its end —
//! the daemon or the SSH channel gone — makes the worker kill itself and its plugin).
//! Payloads are capped at [`MAX_PAYLOAD`] so a misbehaving peer cannot make the other side
//! allocate without bound.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// The protocol's version: the worker's hello carries it, and the daemon refuses any other.
/// Version 1 was the hidden `vigild __worker` mode (config on stdin until EOF, no hello);
/// version 2 ran one plugin per worker; version 3 adds the serve mode (run and exit frames).
pub const PROTOCOL: u32 = 3;

/// Digest of this file, made by the build script: the worker's hello carries it, so a daemon
/// and a worker built from different frame definitions refuse each other.
pub const WIRE_HASH: &str = env!("VIGIL_WIRE_HASH");

/// Largest payload a frame may carry (4 MiB). A plugin record bigger than this is refused by
/// the worker and fails the scan with a protocol violation.
pub const MAX_PAYLOAD: usize = 4 << 20;

/// Size of the frame header: payload length (u32 LE) and tag (u8).
pub const HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// JSON [`PluginInfo`]: sent once the library is loaded and checked.
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
    /// JSON [`WorkerHello`]: the worker's first frame, before it reads anything.
    Worker = 8,
    /// Daemon → worker: the plugin's config (JSON), once.
    Config = 9,
    /// Daemon → serving worker: run a plugin (see [`run_payload`]).
    Run = 10,
    /// Serving worker → daemon: the plugin's process ended (see [`exit_payload`]), after its
    /// last frame.
    Exit = 11,
}

impl Tag {
    pub fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Hello,
            2 => Tag::Item,
            3 => Tag::Note,
            4 => Tag::Error,
            5 => Tag::Done,
            6 => Tag::Violation,
            7 => Tag::Unseen,
            8 => Tag::Worker,
            9 => Tag::Config,
            10 => Tag::Run,
            11 => Tag::Exit,
            _ => return None,
        })
    }
}

/// The worker's first frame: which protocol and wire it speaks, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    pub protocol: u32,
    pub wire: String,
    pub version: String,
}

impl WorkerHello {
    /// The hello of a worker built with this crate.
    pub fn this_build(version: &str) -> WorkerHello {
        WorkerHello {
            protocol: PROTOCOL,
            wire: WIRE_HASH.to_owned(),
            version: version.to_owned(),
        }
    }

    /// `Err` says why a daemon built with this crate cannot talk to that worker. The
    /// worker's own words (version, wire) are cut short: on a remote node they are whatever
    /// the node sent.
    pub fn check(&self) -> Result<(), String> {
        if self.protocol != PROTOCOL || self.wire != WIRE_HASH {
            return Err(format!(
                "the worker (vigil-worker {}) speaks protocol {} wire {}, this vigild speaks \
                 protocol {PROTOCOL} wire {WIRE_HASH}; install the vigil-worker built with \
                 this vigild",
                shorten(&self.version),
                self.protocol,
                shorten(&self.wire)
            ));
        }
        Ok(())
    }
}

/// At most 64 characters of `text`, with `…` when cut.
fn shorten(text: &str) -> String {
    const KEEP: usize = 64;
    match text.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
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
    Worker(WorkerHello),
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
    /// Raw config JSON.
    Config(Vec<u8>),
    /// A plugin to run: its configured name (which picks its capability profile), its
    /// library's path on the node and its raw config JSON.
    Run {
        plugin: Vec<u8>,
        library: Vec<u8>,
        config: Vec<u8>,
    },
    Exit(ExitKind),
}

/// How a serving worker's plugin process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with this status (0: clean).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
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

/// Decodes a frame header into its tag and payload length, refusing a length over
/// [`MAX_PAYLOAD`] before anyone allocates for it.
pub fn parse_header(head: &[u8; HEADER_LEN]) -> Result<(Tag, usize), FrameError> {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len });
    }
    let tag = Tag::from_u8(head[4]).ok_or(FrameError::UnknownTag(head[4]))?;
    Ok((tag, len))
}

/// Writes one frame into `w` (a buffer or a pipe). Refuses (without writing anything) a
/// payload over [`MAX_PAYLOAD`].
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

/// Encodes the payload of a [`Tag::Run`] frame: the plugin's name and the library path,
/// each as a `u32` LE length and its bytes, then the config JSON.
pub fn run_payload(plugin: &[u8], library: &[u8], config: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + plugin.len() + library.len() + config.len());
    for field in [plugin, library] {
        p.extend_from_slice(&(field.len() as u32).to_le_bytes());
        p.extend_from_slice(field);
    }
    p.extend_from_slice(config);
    p
}

/// Splits a `u32` LE length-prefixed field off the front of `bytes`.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Encodes the payload of a [`Tag::Exit`] frame: `u8` kind (0 exit code, 1 signal), `i32` LE.
pub fn exit_payload(exit: ExitKind) -> [u8; 5] {
    let (kind, value) = match exit {
        ExitKind::Code(c) => (0u8, c),
        ExitKind::Signal(s) => (1u8, s),
    };
    let v = value.to_le_bytes();
    [kind, v[0], v[1], v[2], v[3]]
}

/// Encodes the payload of a [`Tag::Hello`] frame.
pub fn hello_payload(info: &PluginInfo) -> Vec<u8> {
    serde_json::to_vec(info).unwrap_or_default()
}

/// Encodes the payload of a [`Tag::Worker`] frame.
pub fn worker_payload(hello: &WorkerHello) -> Vec<u8> {
    serde_json::to_vec(hello).unwrap_or_default()
}

/// Decodes a frame's payload.
pub fn decode(tag: Tag, payload: Vec<u8>) -> Result<Frame, FrameError> {
    let text = |payload: Vec<u8>| {
        String::from_utf8(payload).map_err(|_| FrameError::BadPayload {
            tag,
            reason: "text is not valid UTF-8".to_owned(),
        })
    };
    let json_err = |e: serde_json::Error| FrameError::BadPayload {
        tag,
        reason: e.to_string(),
    };
    Ok(match tag {
        Tag::Worker => Frame::Worker(serde_json::from_slice(&payload).map_err(json_err)?),
        Tag::Hello => Frame::Hello(serde_json::from_slice(&payload).map_err(json_err)?),
        Tag::Item => Frame::Item(payload),
        Tag::Unseen => Frame::Unseen(payload),
        Tag::Config => Frame::Config(payload),
        Tag::Run => {
            let bad = |reason: &str| FrameError::BadPayload {
                tag,
                reason: reason.to_owned(),
            };
            let (plugin, rest) =
                split_field(&payload).ok_or_else(|| bad("the plugin name runs past the frame"))?;
            let (library, config) =
                split_field(rest).ok_or_else(|| bad("the library path runs past the frame"))?;
            Frame::Run {
                plugin: plugin.to_vec(),
                library: library.to_vec(),
                config: config.to_vec(),
            }
        }
        Tag::Exit => {
            let p: [u8; 5] = payload
                .as_slice()
                .try_into()
                .map_err(|_| FrameError::BadPayload {
                    tag,
                    reason: format!("expected 5 bytes, got {}", payload.len()),
                })?;
            let value = i32::from_le_bytes([p[1], p[2], p[3], p[4]]);
            match p[0] {
                0 => Frame::Exit(ExitKind::Code(value)),
                1 => Frame::Exit(ExitKind::Signal(value)),
                k => {
                    return Err(FrameError::BadPayload {
                        tag,
                        reason: format!("unknown exit kind {k}"),
                    })
                }
            }
        }
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

/// Decodes a whole byte buffer of frames (for tests and tools; streams use [`parse_header`]
/// and [`decode`]).
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::Truncated {
                missing: HEADER_LEN - bytes.len(),
            });
        }
        let head: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("5 bytes");
        let (tag, len) = parse_header(&head)?;
        bytes = &bytes[HEADER_LEN..];
        if bytes.len() < len {
            return Err(FrameError::Truncated {
                missing: len - bytes.len(),
            });
        }
        out.push(decode(tag, bytes[..len].to_vec())?);
        bytes = &bytes[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Tag::Worker,
            Tag::Config,
            Tag::Run,
            Tag::Exit,
        ];
        for (n, tag) in (1u8..).zip(tags) {
            assert_eq!(tag as u8, n);
            assert_eq!(Tag::from_u8(n), Some(tag));
        }
        assert_eq!(Tag::from_u8(12), None);
        assert_eq!(
            run_payload(b"f", b"/l", b"{}"),
            [1, 0, 0, 0, b'f', 2, 0, 0, 0, b'/', b'l', b'{', b'}']
        );
        assert_eq!(exit_payload(ExitKind::Signal(9)), [1, 9, 0, 0, 0]);
        assert_eq!(Tag::from_u8(0), None);
        assert_eq!(
            done_payload(-1, 2),
            [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(WIRE_HASH.len(), 16);
    }

    #[test]
    fn frames_round_trip() {
        let info = PluginInfo {
            name: "files".into(),
            version: "1.0".into(),
            volatile_attributes: vec!["atime".into()],
        };
        let hello = WorkerHello::this_build("0.1.0");
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Worker, &worker_payload(&hello)).unwrap();
        write_frame(&mut buf, Tag::Hello, &hello_payload(&info)).unwrap();
        write_frame(&mut buf, Tag::Item, br#"{"key":"k"}"#).unwrap();
        write_frame(&mut buf, Tag::Note, "permission denied: /x".as_bytes()).unwrap();
        write_frame(&mut buf, Tag::Error, b"boom").unwrap();
        write_frame(&mut buf, Tag::Violation, b"frame too large").unwrap();
        write_frame(&mut buf, Tag::Unseen, br#"{"key":"/x","reason":"r"}"#).unwrap();
        write_frame(&mut buf, Tag::Config, b"{}").unwrap();
        write_frame(&mut buf, Tag::Done, &done_payload(1, 7)).unwrap();
        write_frame(
            &mut buf,
            Tag::Run,
            &run_payload(b"files", b"/w/lib.so", b"{\"a\":1}"),
        )
        .unwrap();
        write_frame(&mut buf, Tag::Exit, &exit_payload(ExitKind::Code(65))).unwrap();
        assert_eq!(
            decode_all(&buf).unwrap(),
            vec![
                Frame::Worker(hello),
                Frame::Hello(info),
                Frame::Item(br#"{"key":"k"}"#.to_vec()),
                Frame::Note("permission denied: /x".into()),
                Frame::Error("boom".into()),
                Frame::Violation("frame too large".into()),
                Frame::Unseen(br#"{"key":"/x","reason":"r"}"#.to_vec()),
                Frame::Config(b"{}".to_vec()),
                Frame::Done { rc: 1, items: 7 },
                Frame::Run {
                    plugin: b"files".to_vec(),
                    library: b"/w/lib.so".to_vec(),
                    config: b"{\"a\":1}".to_vec(),
                },
                Frame::Exit(ExitKind::Code(65)),
            ]
        );
    }

    #[test]
    fn a_hello_of_another_build_is_refused() {
        assert!(WorkerHello::this_build("x").check().is_ok());
        let mut other = WorkerHello::this_build("0.0.9");
        other.protocol = 1;
        let err = other.check().unwrap_err();
        assert!(err.contains("protocol 1"), "{err}");
        let mut other = WorkerHello::this_build("0.0.9");
        other.wire = "0000000000000000".into();
        assert!(other
            .check()
            .unwrap_err()
            .contains("install the vigil-worker"));
    }

    #[test]
    fn max_size_is_enforced_both_ways() {
        let big = vec![b'x'; MAX_PAYLOAD + 1];
        let mut buf = Vec::new();
        assert!(matches!(
            write_frame(&mut buf, Tag::Item, &big),
            Err(FrameError::TooLarge { len }) if len == MAX_PAYLOAD + 1
        ));
        assert!(buf.is_empty(), "nothing written for a refused frame");
        write_frame(&mut buf, Tag::Item, &big[..MAX_PAYLOAD]).unwrap();
        assert_eq!(decode_all(&buf).unwrap().len(), 1);
        let mut hostile = ((MAX_PAYLOAD + 1) as u32).to_le_bytes().to_vec();
        hostile.push(Tag::Item as u8);
        let err = decode_all(&hostile).unwrap_err();
        assert!(err.to_string().starts_with("frame too large"), "{err}");
    }

    #[test]
    fn truncated_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, b"hello").unwrap();
        for cut in 1..buf.len() {
            let err = decode_all(&buf[..cut]).unwrap_err();
            assert!(
                matches!(err, FrameError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, &[0xff, 0xfe]).unwrap();
        assert!(matches!(
            decode_all(&buf),
            Err(FrameError::BadPayload { tag: Tag::Note, .. })
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Done, &[1, 2, 3]).unwrap();
        assert!(matches!(
            decode_all(&buf),
            Err(FrameError::BadPayload { tag: Tag::Done, .. })
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Worker, b"{").unwrap();
        assert!(matches!(
            decode_all(&buf),
            Err(FrameError::BadPayload {
                tag: Tag::Worker,
                ..
            })
        ));
        for bad in [&[1u8, 0][..], &[9, 0, 0, 0, b'x']] {
            let mut buf = Vec::new();
            write_frame(&mut buf, Tag::Run, bad).unwrap();
            assert!(decode_all(&buf).is_err(), "{bad:?}");
        }
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Exit, &[2, 0, 0, 0, 0]).unwrap();
        assert!(decode_all(&buf).is_err());
        assert!(matches!(
            decode_all(&[0, 0, 0, 0, 99]),
            Err(FrameError::UnknownTag(99))
        ));
    }
}
