//! The hashing pipeline: the walker numbers entries in output order, a small pool of
//! threads describes and hashes them in parallel, and the calling thread (which owns the
//! host's non-`Send` emitter) puts the results back in order and emits them.
//!
//! Memory is bounded by the window: the walker takes a permit per sequence number and the
//! emitter returns one per emitted number, so at most [`WINDOW`] entries (and their open
//! directory descriptors) are in flight however large the tree, and a slow huge file only
//! holds back output, never piles results up.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver};

use crate::config::Compiled;
use crate::describe::{Describer, Outcome};
use crate::ids::Ids;
use crate::walk::{Msg, Walker};
use crate::Output;

/// Entries in flight between the walker and the emitter.
pub const WINDOW: usize = 256;

/// getdents64 buffer size for the walker.
const DIRBUF: usize = 64 * 1024;

pub fn run(cfg: &Compiled, ids: &Ids, root: OwnedFd, out: &mut dyn Output) -> Result<(), String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The channels live inside the scope closure so that an early return drops them
        // before the scope joins its threads: dropped ends are what tells threads to quit.
        let (permit_tx, permit_rx) = bounded::<()>(WINDOW);
        let (job_tx, job_rx) = bounded(WINDOW);
        let (res_tx, res_rx) = unbounded::<Msg>();
        for i in 0..cfg.threads {
            let job_rx = job_rx.clone();
            let res_tx = res_tx.clone();
            let stop = &stop;
            let spawned = std::thread::Builder::new()
                .name(format!("files-hash-{i}"))
                .spawn_scoped(s, move || {
                    let mut d = Describer::new(cfg, ids);
                    for (seq, job) in job_rx {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if res_tx.send(Msg::Done(seq, d.describe(job))).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = spawned {
                return Err(format!("cannot start hashing thread: {e}"));
            }
        }
        drop(job_rx);
        let walker_tx = res_tx.clone();
        drop(res_tx);
        let spawned = std::thread::Builder::new()
            .name("files-walk".into())
            .spawn_scoped(s, move || {
                let mut w = Walker {
                    cfg,
                    root: Arc::new(root),
                    permits: permit_tx,
                    jobs: job_tx,
                    results: walker_tx.clone(),
                    seq: 0,
                    dirbuf: vec![0; DIRBUF],
                };
                // `Gone` means the emitter already stopped: nobody is left to tell.
                let _ = w.run();
                let total = w.seq;
                drop(w);
                let _ = walker_tx.send(Msg::End { total });
            });
        if let Err(e) = spawned {
            return Err(format!("cannot start walker thread: {e}"));
        }
        let r = emit_in_order(res_rx, permit_rx, out);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    })
}

/// Receives results in any order and emits them in sequence order. Dropping the receivers
/// on return unblocks and ends the walker and the workers.
fn emit_in_order(
    results: Receiver<Msg>,
    permits: Receiver<()>,
    out: &mut dyn Output,
) -> Result<(), String> {
    let mut ring: Vec<Option<Outcome>> = (0..WINDOW).map(|_| None).collect();
    let mut next: u64 = 0;
    let mut end: Option<u64> = None;
    loop {
        while let Some(o) = ring[(next % WINDOW as u64) as usize].take() {
            if let Some(item) = &o.item {
                out.item(item).map_err(|e| e.to_string())?;
            }
            for n in &o.notes {
                out.note(n).map_err(|e| e.to_string())?;
            }
            if let Some((key, reason)) = &o.unseen {
                out.unseen(key, reason).map_err(|e| e.to_string())?;
            }
            next += 1;
            // The walker sent this permit before it handed out `next - 1`.
            let _ = permits.try_recv();
        }
        if end.is_some_and(|total| next >= total) {
            return Ok(());
        }
        match results.recv() {
            Ok(Msg::Done(seq, o)) => {
                debug_assert!(seq >= next && seq < next + WINDOW as u64);
                ring[(seq % WINDOW as u64) as usize] = Some(o);
            }
            Ok(Msg::End { total }) => end = Some(total),
            Err(_) => return Err("files scan: worker threads ended unexpectedly".to_owned()),
        }
    }
}
