//! Issue 16: hostile data and least privilege.

mod diff;
mod library;
mod props;
mod secrets;
mod setpriv;
mod socket;
mod text;
mod worker;
