//! Issue 16: hostile data and least privilege.

mod diff;
mod fuzz_corpus;
mod library;
mod props;
mod secrets;
mod setpriv;
mod socket;
mod text;
mod worker;
