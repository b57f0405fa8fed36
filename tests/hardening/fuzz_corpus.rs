//! Issue 16: every committed fuzz corpus file (`fuzz/corpus/TARGET/*`) replayed on stable
//! through the function its fuzz target calls (`vigil::fuzzing`): no input panics (the
//! functions also assert their parser's invariants), and the hand-made seeds have their
//! documented outcome — `ok-*` files are accepted, `err-*` files refused. Files the fuzzer
//! added (named by their hash) must only not panic.

use std::path::{Path, PathBuf};

use vigil::fuzzing::{self, Outcome, TARGETS};

const SRC: &str = env!("CARGO_MANIFEST_DIR");

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(SRC).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_with_its_documented_outcome() {
    let started = std::time::Instant::now();
    let mut replayed = 0;
    let mut wrong = Vec::new();
    for (target, run) in TARGETS {
        let files = corpus(target);
        let seeds = |prefix: &str| {
            files
                .iter()
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                .count()
        };
        assert!(seeds("err-") > 0, "{target}: no refused seed");
        if *target != "worker_hello" {
            assert!(seeds("ok-") > 0, "{target}: no accepted seed");
        }
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data))
                .unwrap_or_else(|_| panic!("{target}/{name} panicked (see above)"));
            let expected = if name.starts_with("ok-") {
                Some(true)
            } else if name.starts_with("err-") {
                Some(false)
            } else {
                None
            };
            match (expected, &outcome) {
                (Some(false), Outcome::Refused(why)) if why.is_empty() => {
                    wrong.push(format!("{target}/{name}: refused without a message"))
                }
                (Some(true), Outcome::Refused(_)) | (Some(false), Outcome::Accepted(_)) => {
                    wrong.push(format!("{target}/{name}: {outcome:?}"))
                }
                _ => {}
            }
            replayed += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "outcomes other than documented:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "replayed {replayed} corpus files in {:?}",
        started.elapsed()
    );
}

#[test]
fn every_fuzz_target_has_its_function_and_corpus() {
    let dir = Path::new(SRC).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| format!("{n}.rs")).collect();
    names.sort();
    assert_eq!(
        files, names,
        "fuzz/fuzz_targets and vigil::fuzzing::TARGETS"
    );
    let manifest = std::fs::read_to_string(Path::new(SRC).join("fuzz/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let source = std::fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("vigil::fuzzing::{name}(")),
            "{name}.rs calls its function"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
    }
}

#[test]
fn this_builds_worker_hello_is_accepted_and_others_refused_briefly() {
    use vigil::plugin::frame::{self, Tag, WorkerHello};
    let mut bytes = Vec::new();
    let hello = WorkerHello::this_build("0.1.0");
    frame::write_frame(&mut bytes, Tag::Worker, &vigil_wire::worker_payload(&hello)).unwrap();
    assert!(matches!(
        fuzzing::worker_hello(&bytes),
        Outcome::Accepted(_)
    ));
    // A hostile node's 1 MiB version string does not become a 1 MiB log message.
    let mut evil = hello;
    evil.version = "\u{1b}[2J".repeat(256 << 10);
    evil.wire = "w".repeat(1 << 20);
    let mut bytes = Vec::new();
    frame::write_frame(&mut bytes, Tag::Worker, &vigil_wire::worker_payload(&evil)).unwrap();
    match fuzzing::worker_hello(&bytes) {
        Outcome::Refused(why) => {
            assert!(why.len() <= fuzzing::MAX_HELLO_REFUSAL, "{}", why.len());
            assert!(why.contains("install the vigil-worker"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}
