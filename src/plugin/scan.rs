//! What a plugin scan yields and how it ends, shared by the supervisor (which drives the
//! worker) and the pump (which turns its frames into these): events, the outcome, the
//! typed failures, and the caps that bound what is buffered and kept.

use std::time::Duration;

use vigil_plugin::Item;
pub use vigil_plugin::Unseen;

use super::frame;
use super::library::LibraryError;

/// Events buffered between the frame reader and the consumer, at most.
pub const EVENT_CAPACITY: usize = 1024;
/// Bytes of item/note payload buffered between the frame reader and the consumer, at most.
pub const BUFFER_BYTES: usize = 2 * frame::MAX_PAYLOAD;
/// Notes kept for [`ScanOutcome::Succeeded`]; later ones are counted, not kept. The same cap
/// applies, separately, to unseen records.
pub const MAX_NOTES: usize = 1000;
/// Bytes of notes kept for [`ScanOutcome::Succeeded`]; later ones are counted, not kept. The
/// same cap applies, separately, to unseen records (key and reason).
pub const MAX_NOTES_BYTES: usize = 1 << 20;
/// Longest note, in bytes: a longer one is cut (on a char boundary) and ends with a marker
/// saying how long it was, both in [`ScanEvent::Note`] and in the outcome. An unseen record's
/// reason is cut the same way (its key never is: a cut key would name another subtree).
pub const MAX_NOTE_BYTES: usize = 4096;

/// How items are handed to the consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ItemForm {
    /// [`ScanEvent::Item`] with the decoded item.
    #[default]
    Decoded,
    /// [`ScanEvent::ItemJson`] with the plugin's JSON, checked to decode as an [`Item`]:
    /// for consumers that only pass items through (`vigild plugin run`).
    Json,
    /// [`ScanEvent::ItemJson`] with the plugin's JSON as the worker framed it, not decoded:
    /// for a consumer that checks each item as it reads it (a scan stores items straight
    /// from their JSON, `SnapshotWriter::push_json`, and refuses one that is not an item
    /// just as decoding would).
    Unchecked,
}

/// What a running scan yields, in the order the plugin emitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEvent {
    Item(Item),
    /// Only with [`ItemForm::Json`] or [`ItemForm::Unchecked`]: one item's JSON.
    ItemJson(Vec<u8>),
    /// A coverage note: something the plugin could not see. Does not fail the scan. At most
    /// [`MAX_NOTE_BYTES`].
    Note(String),
    /// The item `key` and everything below it could not be seen in this scan (see
    /// [`vigil_plugin::RECORD_UNSEEN`]): missing items there are not seen, not removed.
    /// Does not fail the scan. `reason` is at most [`MAX_NOTE_BYTES`].
    Unseen {
        key: String,
        reason: String,
    },
}

/// How a scan ended.
#[derive(Debug)]
pub enum ScanOutcome {
    Succeeded {
        items: u64,
        /// The first notes, at most [`MAX_NOTES`] and [`MAX_NOTES_BYTES`] in all.
        notes: Vec<String>,
        /// Notes that were not kept in `notes` ("and N more notes").
        more_notes: u64,
        /// The first unseen records, bounded like `notes`.
        unseen: Vec<Unseen>,
        /// Unseen records that were not kept in `unseen`.
        more_unseen: u64,
    },
    Failed(PluginFailure),
}

/// Why a scan failed. Each message says what failed and, where possible, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginFailure {
    #[error("the plugin reported an error: {0}")]
    PluginError(String),
    #[error("the plugin crashed with {signal} (a bug in the plugin; report it to its author){}", tail(.stderr))]
    Crashed { signal: String, stderr: String },
    #[error("the plugin worker exited with status {code} without finishing the scan{}", tail(.stderr))]
    Exited { code: i32, stderr: String },
    #[error("the scan timed out after {}; raise daemon.task_timeout if the plugin is just slow", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the scan was cancelled")]
    Cancelled,
    #[error("plugin protocol violation: {0}")]
    Protocol(String),
    #[error("refused to load the plugin: {0}")]
    Refused(#[source] LibraryError),
    #[error("cannot start the plugin worker {0}: {1}; check that vigil-worker is installed beside vigild (or set $VIGIL_WORKER)")]
    Spawn(String, #[source] std::io::Error),
    #[error("incompatible worker: {0}")]
    Incompatible(String),
    #[error("{0}")]
    Remote(#[source] super::ssh::failure::RemoteFailure),
}

fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(
            "; its last output on stderr: {}",
            stderr.replace('\n', " | ")
        )
    }
}
