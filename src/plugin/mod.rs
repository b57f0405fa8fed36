//! Scanner plugins: the isolated worker process and the daemon-side supervisor.
//!
//! The worker is the separate `vigil-worker` binary (crate `worker/`), the only code that
//! loads plugin libraries; it runs on the daemon's machine or, through `ssh`, on a remote
//! node. The daemon talks to it through `frame`s (the `vigil-wire` crate), driven by
//! `supervisor`, after `library` has checked who can write the library. A remote node's
//! plugins all run through one worker over the queue task's SSH channel (`remote`).

pub mod devtool;
pub mod frame;
pub mod library;
mod pump;
pub mod remote;
pub mod scan;
pub mod ssh;
mod stderr;
pub mod supervisor;
