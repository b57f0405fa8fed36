//! The parsers that take hostile bytes, one plain function per fuzz target: `fuzz/`
//! (cargo-fuzz, nightly) calls them with generated inputs, and a stable test
//! (`tests/hardening/fuzz_corpus.rs`) replays every committed corpus file through the same
//! function, so what the fuzzer found stays fixed without nightly in CI.
//!
//! Each function returns an [`Outcome`] (the input was taken, or refused with the message a
//! user would see) and panics only when an invariant of the parser breaks — which is what
//! the fuzzer looks for:
//!
//! - `frames`: the worker wire as the daemon reads it (async, frame by frame) agrees with
//!   [`vigil_wire::decode_all`], and every decoded frame encodes back to a frame that
//!   decodes to itself;
//! - `items`: a plugin's item or unseen record (the JSON the daemon decodes from item and
//!   unseen frames) survives a round trip;
//! - `config` and `policy`: the loaders refuse with at least one error, each located inside
//!   the text;
//! - `api_body`: every request body type takes any bytes, and an accepted body encodes back
//!   to one that is accepted again;
//! - `worker_hello`: the first frame from a (possibly remote, possibly hostile) worker is
//!   accepted only if it is this build's hello, and a refusal stays short whatever the
//!   node sent.
//!
//! Nothing imports this module; it imports the base layer and `plugin::frame` only.

use std::collections::BTreeSet;
use std::path::Path;

use crate::plugin::frame::{self, Frame, Tag, WorkerHello};
use crate::proto;
use crate::proto::endpoints::{decode_body, RequestBody};

/// What a parser made of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: a short description of the value.
    Accepted(String),
    /// Refused, with the message the user sees.
    Refused(String),
}

impl Outcome {
    fn of<T, E: std::fmt::Display>(r: Result<T, E>, describe: impl FnOnce(&T) -> String) -> Self {
        match r {
            Ok(v) => Outcome::Accepted(describe(&v)),
            Err(e) => Outcome::Refused(e.to_string()),
        }
    }
}

/// A fuzz target: its name (the file `fuzz/fuzz_targets/NAME.rs` and the corpus directory
/// `fuzz/corpus/NAME/`) and its function.
pub type Target = (&'static str, fn(&[u8]) -> Outcome);

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    ("frames", frames),
    ("items", items),
    ("config", config),
    ("policy", policy),
    ("api_body", api_body),
    ("worker_hello", worker_hello),
];

/// At most this many frames are decoded from one input (an input of empty frames is 5
/// bytes each).
const MAX_FRAMES: usize = 10_000;

/// The longest refusal a worker's hello may cause, in bytes.
pub const MAX_HELLO_REFUSAL: usize = 1024;

/// A frame stream from the worker, read as the daemon reads it.
pub fn frames(data: &[u8]) -> Outcome {
    let (streamed, end) = read_stream(data);
    if streamed.len() < MAX_FRAMES {
        match (vigil_wire::decode_all(data), &end) {
            (Ok(all), None) => assert_eq!(streamed, all, "the stream reader disagrees"),
            (Err(_), Some(_)) => {}
            (whole, _) => panic!("one reader refused what the other took: {whole:?} / {end:?}"),
        }
    }
    for f in &streamed {
        let bytes = encode(f);
        let again = vigil_wire::decode_all(&bytes).expect("an encoded frame decodes");
        assert_eq!(again.as_slice(), std::slice::from_ref(f), "round trip");
    }
    match end {
        None => Outcome::Accepted(format!("{} frames", streamed.len())),
        Some(e) => Outcome::Refused(e),
    }
}

/// Reads frames one by one with the daemon's async reader (over a byte slice, which never
/// waits, so no runtime is needed); the frames and the error that ended the stream.
fn read_stream(data: &[u8]) -> (Vec<Frame>, Option<String>) {
    futures::executor::block_on(async {
        let mut r = data;
        let mut out = Vec::new();
        while out.len() < MAX_FRAMES {
            match frame::read_frame(&mut r).await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    })
}

/// The bytes of one frame.
fn encode(f: &Frame) -> Vec<u8> {
    let (tag, payload): (Tag, Vec<u8>) = match f {
        Frame::Worker(h) => (Tag::Worker, vigil_wire::worker_payload(h)),
        Frame::Hello(i) => (Tag::Hello, vigil_wire::hello_payload(i)),
        Frame::Item(p) => (Tag::Item, p.clone()),
        Frame::Note(t) => (Tag::Note, t.as_bytes().to_vec()),
        Frame::Error(t) => (Tag::Error, t.as_bytes().to_vec()),
        Frame::Done { rc, items } => (Tag::Done, vigil_wire::done_payload(*rc, *items).to_vec()),
        Frame::Violation(t) => (Tag::Violation, t.as_bytes().to_vec()),
        Frame::Unseen(p) => (Tag::Unseen, p.clone()),
        Frame::Config(p) => (Tag::Config, p.clone()),
        Frame::Run {
            plugin,
            library,
            config,
        } => (Tag::Run, vigil_wire::run_payload(plugin, library, config)),
        Frame::Exit(e) => (Tag::Exit, vigil_wire::exit_payload(*e).to_vec()),
    };
    let mut out = Vec::new();
    frame::write_frame(&mut out, tag, &payload).expect("a decoded payload fits a frame");
    out
}

/// The payload of an item frame (or, when it is not an item, of an unseen frame), decoded
/// as the daemon decodes them.
pub fn items(data: &[u8]) -> Outcome {
    if let Ok(item) = serde_json::from_slice::<vigil_plugin::Item>(data) {
        let again: vigil_plugin::Item =
            serde_json::from_slice(&serde_json::to_vec(&item).expect("an item encodes"))
                .expect("an encoded item decodes");
        assert_eq!(again, item, "item round trip");
        return Outcome::Accepted(format!("item {:?}", item.key));
    }
    let unseen = serde_json::from_slice::<vigil_plugin::Unseen>(data);
    if let Ok(u) = &unseen {
        let again: vigil_plugin::Unseen =
            serde_json::from_slice(&serde_json::to_vec(u).expect("an unseen record encodes"))
                .expect("an encoded unseen record decodes");
        assert_eq!(&again, u, "unseen round trip");
    }
    Outcome::of(unseen, |u| format!("unseen {:?}", u.key))
}

/// Checks that a loader's refusal has errors, each inside the text.
fn located(text: &str, errors: &crate::located::LocatedErrors) {
    assert!(!errors.0.is_empty(), "a refusal says why");
    let lines = text.split('\n').count();
    for e in &errors.0 {
        assert!(!e.message.is_empty(), "an error has a message");
        assert!(e.line <= lines, "{e} is past the end ({lines} lines)");
    }
}

/// A config file (UTF-8 text; other bytes are refused as the loader refuses them).
pub fn config(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused("the config file is not UTF-8".into());
    };
    let r = crate::config::parse(Path::new("config.toml"), text, Path::new("/etc/vigil"));
    if let Err(e) = &r {
        located(text, e);
    }
    Outcome::of(r, |c| {
        format!("{} nodes, {} plugins", c.nodes.len(), c.plugins.len())
    })
}

/// A policy file, for a config with the standard plugins.
pub fn policy(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused("the policy file is not UTF-8".into());
    };
    let plugins: BTreeSet<String> = ["files", "packages", "accounts", "services", "sysctl"]
        .map(String::from)
        .into();
    let r = crate::policy::parse(Path::new("policy.toml"), text, &plugins);
    if let Err(e) = &r {
        located(text, e);
    }
    Outcome::of(r, |p| format!("{} checks", p.checks.len()))
}

/// Decodes `bytes` as body type `B` and, if taken, checks that its encoding is taken too.
fn body<B: RequestBody>(bytes: &[u8]) -> Result<String, String> {
    let b = decode_body::<B>(bytes)?;
    let encoded = serde_json::to_vec(&b).expect("a body encodes");
    decode_body::<B>(&encoded).expect("an encoded body decodes");
    Ok(String::from_utf8_lossy(&encoded).into_owned())
}

/// The body of every POST endpoint: the first byte picks the body type (modulo their
/// number), the rest is the body.
pub fn api_body(data: &[u8]) -> Outcome {
    type Decode = fn(&[u8]) -> Result<String, String>;
    const BODIES: &[(&str, Decode)] = &[
        ("enqueue", body::<proto::EnqueueRequest>),
        ("reload", body::<proto::ReloadRequest>),
        ("cancel", body::<proto::CancelRequest>),
        ("trust", body::<proto::TrustRequest>),
        ("close all", body::<proto::UserTaskFilter>),
        ("assign", body::<proto::AssignRequest>),
        ("outbox retry", body::<proto::OutboxRetryRequest>),
        ("outbox test", body::<proto::OutboxTestRequest>),
        ("no body", body::<proto::endpoints::NoBody>),
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return Outcome::Refused("empty input".into());
    };
    let (name, decode) = BODIES[usize::from(pick) % BODIES.len()];
    match decode(rest) {
        Ok(v) => Outcome::Accepted(format!("{name}: {v}")),
        Err(e) => Outcome::Refused(format!("{name}: {e}")),
    }
}

/// The first frame from a worker, local or on a remote node, as the daemon checks it.
pub fn worker_hello(data: &[u8]) -> Outcome {
    let mut r = data;
    let first = futures::executor::block_on(frame::read_frame(&mut r));
    let hello: Result<WorkerHello, String> = match first {
        Ok(Some(Frame::Worker(h))) => Ok(h),
        Ok(Some(other)) => Err(format!(
            "the first frame is not the worker's hello: {other:?}"
        )),
        Ok(None) => Err("no hello".into()),
        Err(e) => Err(e.to_string()),
    };
    let hello = match hello {
        Ok(h) => h,
        Err(e) => return Outcome::Refused(e.chars().take(200).collect()),
    };
    match hello.check() {
        Ok(()) => {
            assert_eq!(hello.protocol, vigil_wire::PROTOCOL);
            assert_eq!(hello.wire, vigil_wire::WIRE_HASH);
            Outcome::Accepted(format!("vigil-worker {:?}", hello.version))
        }
        Err(why) => {
            assert!(
                why.len() <= MAX_HELLO_REFUSAL,
                "a refusal of {} bytes: the node's text is not bounded",
                why.len()
            );
            Outcome::Refused(why)
        }
    }
}
