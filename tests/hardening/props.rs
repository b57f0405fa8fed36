//! Issue 16: properties of the parsers that take input from outside (run in CI, bounded to
//! a few hundred cases each): the plugin frame decoder, the config and policy loaders and
//! the API request bodies never panic, whatever they are given, and well-formed frames
//! decode to what was written.

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use vigil::plugin::frame::{self, Frame, Tag};

const EXAMPLE: &str = include_str!("../../config.toml.example");
const POLICY: &str = include_str!("../../policies/debian-baseline.toml");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Reads every frame of `bytes` until the end or an error; never panics.
fn read_all(rt: &tokio::runtime::Runtime, bytes: &[u8]) -> Vec<Result<Frame, String>> {
    rt.block_on(async {
        let mut r = bytes;
        let mut out = Vec::new();
        while out.len() < 1000 {
            match frame::read_frame(&mut r).await {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    })
}

/// A text with a piece of `base` replaced by `insert` at a place chosen by `at`.
fn mutate(base: &str, at: usize, cut: usize, insert: &str) -> String {
    let mut i = at % (base.len() + 1);
    while !base.is_char_boundary(i) {
        i -= 1;
    }
    let mut j = (i + cut % 64).min(base.len());
    while !base.is_char_boundary(j) {
        j -= 1;
    }
    format!("{}{insert}{}", &base[..i], &base[j..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_frame_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let rt = runtime();
        let _ = read_all(&rt, &bytes);
    }

    #[test]
    fn written_frames_read_back(notes in proptest::collection::vec(".{0,64}", 1..8),
                               items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut bytes = Vec::new();
        for n in &notes {
            frame::write_frame(&mut bytes, Tag::Note, n.as_bytes()).unwrap();
        }
        for i in &items {
            frame::write_frame(&mut bytes, Tag::Item, i).unwrap();
        }
        let rt = runtime();
        let got = read_all(&rt, &bytes);
        prop_assert_eq!(got.len(), notes.len() + items.len());
        for (g, n) in got.iter().zip(&notes) {
            prop_assert!(matches!(g, Ok(Frame::Note(t)) if t == n), "{:?}", g);
        }
        for (g, i) in got[notes.len()..].iter().zip(&items) {
            prop_assert!(matches!(g, Ok(Frame::Item(p)) if p == i), "{:?}", g);
        }
    }

    #[test]
    fn the_config_loader_takes_any_text(at in any::<usize>(), cut in any::<usize>(), insert in "\\PC{0,16}|[\\[\\]=\"\n{}.,]{0,8}") {
        let text = mutate(EXAMPLE, at, cut, &insert);
        let _ = vigil::config::parse(Path::new("c.toml"), &text, Path::new("/"));
    }

    #[test]
    fn the_policy_loader_takes_any_text(at in any::<usize>(), cut in any::<usize>(), insert in "\\PC{0,16}|[\\[\\]=\"'\n{}()*+?.]{0,8}") {
        let text = mutate(POLICY, at, cut, &insert);
        let plugins: BTreeSet<String> = ["files", "packages", "accounts", "sysctl"].map(String::from).into();
        let _ = vigil::policy::parse(Path::new("p.toml"), &text, &plugins);
    }

    #[test]
    fn request_bodies_take_any_json(body in "\\PC{0,64}", kind in "scan|audit|x", scope in "all|node:a|group:\\PC{0,8}|\\PC{0,8}") {
        let _ = serde_json::from_str::<vigil::proto::EnqueueRequest>(&body);
        let _ = serde_json::from_str::<vigil::proto::UserTaskFilter>(&body);
        let _ = serde_json::from_str::<vigil::proto::AssignRequest>(&body);
        let shaped = serde_json::json!({"kind": kind, "scope": scope}).to_string();
        let _ = serde_json::from_str::<vigil::proto::EnqueueRequest>(&shaped);
        let filter = serde_json::json!({"node": scope, "status": kind}).to_string();
        let _ = serde_json::from_str::<vigil::proto::UserTaskFilter>(&filter);
    }
}
