//! Scanner plugins: the isolated worker process and the daemon-side supervisor.
//!
//! `worker` is the only code that loads plugin libraries, and it only runs in the child
//! process (`vigild __worker`). The daemon talks to it through `frame`s, driven by
//! `supervisor`, after `library` has checked who can write the library.

pub mod devtool;
pub mod frame;
pub mod library;
mod pump;
pub mod scan;
mod stderr;
pub mod supervisor;
pub mod worker;
