//! The reader against a tree that changes under it (issue 16): a swapper thread exchanges a
//! real directory `etc` with a symlink to a directory outside the root (`renameat2` with
//! `RENAME_EXCHANGE`, so `etc` is always one or the other) while the reader reads
//! `etc/passwd` and lists `etc`. Nothing from outside may ever come back, with either
//! resolver. The old lstat-then-open-by-path reader lost this race about once in 2,500 tries.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{self, OFlag, RenameFlags};
use nix::sys::stat::Mode;

use crate::resolve::Resolver;
use crate::{Root, Unreadable};

const INSIDE: &[u8] = b"root:x:0:0:inside the node:/root:/bin/sh\n";
const OUTSIDE: &[u8] = b"root:x:0:0:HOST DATA, OUTSIDE THE NODE:/root:/bin/sh\n";

/// Runs at least this long, and until both outcomes (read inside, refused) were seen.
const AT_LEAST: Duration = Duration::from_secs(2);
/// Hard bounds, whatever happens.
const AT_MOST: Duration = Duration::from_secs(10);
const MAX_TRIES: u64 = 5_000_000;

#[derive(Debug, Default)]
struct Tally {
    tries: u64,
    inside: u64,
    refused: u64,
    changed: u64,
    listed: u64,
    /// Reads by path (`std::fs::read`) that returned host data: the bug the harness catches.
    naive_leaks: u64,
}

fn race(resolver: Resolver) -> Tally {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("passwd"), OUTSIDE).unwrap();
    fs::write(outside.path().join("only-outside"), OUTSIDE).unwrap();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("etc")).unwrap();
    fs::write(root.join("etc/passwd"), INSIDE).unwrap();
    symlink(outside.path(), root.join("swap")).unwrap();
    let dirfd: OwnedFd = fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();

    let stop = AtomicBool::new(false);
    let swaps = AtomicU64::new(0);
    let mut tally = Tally::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                fcntl::renameat2(&dirfd, "etc", &dirfd, "swap", RenameFlags::RENAME_EXCHANGE)
                    .expect("renameat2(RENAME_EXCHANGE)");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        });
        let reader = Root::open_with(root, resolver).unwrap();
        let start = Instant::now();
        let rel = Path::new("etc/passwd");
        loop {
            let elapsed = start.elapsed();
            let both_seen = tally.inside > 0 && tally.refused > 0;
            if (elapsed >= AT_LEAST && both_seen) || elapsed >= AT_MOST || tally.tries >= MAX_TRIES
            {
                break;
            }
            tally.tries += 1;
            match reader.read_bytes(rel) {
                Ok(bytes) => {
                    assert_eq!(bytes, INSIDE, "read {:?}", String::from_utf8_lossy(&bytes));
                    tally.inside += 1;
                }
                Err(Unreadable::Symlink(at)) => {
                    assert_eq!(at, "/etc");
                    tally.refused += 1;
                }
                // Refused at the open, then found swapped back when asked why.
                Err(Unreadable::Io(e)) if e.to_string() == crate::resolve::CHANGED => {
                    tally.changed += 1
                }
                Err(e) => panic!("unexpected {e:?} after {tally:?}"),
            }
            if tally.tries % 8 == 0 {
                if let Ok(names) = reader.list_dir(Path::new("etc")) {
                    assert!(names.iter().all(|(n, _)| n == "passwd"), "listed {names:?}");
                    tally.listed += 1;
                }
                if fs::read(root.join(rel)).is_ok_and(|b| b == OUTSIDE) {
                    tally.naive_leaks += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let swaps = swaps.load(Ordering::Relaxed);
    println!("{resolver:?}: {tally:?}, {swaps} swaps");
    assert!(swaps > 0, "the swapper never ran");
    assert!(tally.inside > 0, "never read the file: {tally:?}");
    assert!(
        tally.refused > 0,
        "never saw the swapped-in symlink: {tally:?}"
    );
    assert!(tally.listed > 0, "never listed the directory: {tally:?}");
    tally
}

#[test]
fn issue_16_a_swapped_in_symlink_never_leads_out_of_the_root_openat2() {
    race(Resolver::Openat2);
}

#[test]
fn issue_16_a_swapped_in_symlink_never_leads_out_of_the_root_walk() {
    race(Resolver::Walk);
}
