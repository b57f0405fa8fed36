//! Turns the worker's frames into scan events and the scan's tally, for the supervisor.
//!
//! Decoding happens here, on the daemon side (items only if the consumer does not check them
//! itself, see [`ItemForm::Unchecked`]): an item that is not valid item JSON, an unseen
//! record that is not `{"key", "reason"}` JSON, a note that is not UTF-8 or frames out of
//! order end the scan with a protocol violation. Each event holds permits of a byte budget
//! until the consumer takes it, so buffered memory is bounded in bytes as well as in count.
//! Notes and unseen reasons are cut to [`MAX_NOTE_BYTES`] here, before anyone sees them, and
//! the ones kept for the outcome are capped in count and in bytes (each kind on its own).

use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use vigil_plugin::{Item, Unseen};

use super::frame::{self, Frame, PluginInfo};
use super::scan::{
    ItemForm, PluginFailure, ScanEvent, ScanOutcome, MAX_NOTES, MAX_NOTES_BYTES, MAX_NOTE_BYTES,
};

/// Reads frames and turns them into events and the scan's tally.
pub(super) struct Pump {
    pub(super) tx: mpsc::Sender<(ScanEvent, OwnedSemaphorePermit)>,
    pub(super) budget: Arc<Semaphore>,
    /// The worker's hello ([`Frame::Worker`]) has arrived.
    pub(super) greeted: bool,
    pub(super) hello: Option<oneshot::Sender<PluginInfo>>,
    pub(super) form: ItemForm,
    pub(super) items: u64,
    pub(super) notes: Vec<String>,
    /// Bytes of `notes`.
    pub(super) notes_bytes: usize,
    /// Notes seen but not kept in `notes`.
    pub(super) dropped_notes: u64,
    /// The first unseen records, kept for the outcome like `notes`.
    pub(super) unseen: Vec<Unseen>,
    /// Bytes of `unseen` (keys and reasons).
    pub(super) unseen_bytes: usize,
    /// Unseen records received, kept or not.
    pub(super) unseen_seen: u64,
    pub(super) error: Option<String>,
    pub(super) done: Option<i32>,
}

pub(super) enum PumpEnd {
    /// Done frame (`done` is set) or end of stream.
    Finished,
    /// The worker sent something it must not: decided, whatever its exit status.
    Protocol(String),
    /// The worker reported a violation (its last frame for this plugin).
    Violation(String),
    /// A serving worker's plugin process ended before its done frame.
    Exit(frame::ExitKind),
    /// The worker's hello names another protocol or wire (see [`frame::WorkerHello::check`]).
    Incompatible(String),
    /// The stream broke off (a frame cut short, a read error): usually the worker died
    /// mid-write, so its exit status is the better explanation when there is one.
    Broken(String),
    ConsumerGone,
}

impl Pump {
    /// Reads frames until this plugin's end. `reader` should be buffered; a serving
    /// worker's channel goes on after it, with the exit frame and the next plugin.
    pub(super) async fn run<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> PumpEnd {
        loop {
            let frame = match frame::read_frame(reader).await {
                Ok(Some(f)) if !self.greeted => match f {
                    Frame::Worker(hello) => {
                        if let Err(why) = hello.check() {
                            return PumpEnd::Incompatible(why);
                        }
                        self.greeted = true;
                        continue;
                    }
                    other => {
                        let mut shown = format!("{other:?}");
                        shown.truncate(120);
                        return PumpEnd::Protocol(not_greeted(&shown));
                    }
                },
                Ok(Some(f)) => f,
                Err(e) if !self.greeted && !matches!(e, frame::FrameError::Io(_)) => {
                    return PumpEnd::Protocol(not_greeted(&e.to_string()))
                }
                Ok(None) => return PumpEnd::Finished,
                Err(e @ (frame::FrameError::Truncated { .. } | frame::FrameError::Io(_))) => {
                    return PumpEnd::Broken(e.to_string())
                }
                Err(e) => return PumpEnd::Protocol(e.to_string()),
            };
            if self.hello.is_some()
                && !matches!(
                    frame,
                    Frame::Hello(_) | Frame::Violation(_) | Frame::Exit(_)
                )
            {
                return PumpEnd::Protocol("the worker did not start with a hello frame".into());
            }
            let event = match frame {
                Frame::Hello(info) => match self.hello.take() {
                    Some(h) => {
                        let _ = h.send(info);
                        continue;
                    }
                    None => return PumpEnd::Protocol("a second hello frame".into()),
                },
                Frame::Item(json) => {
                    let event = match self.form {
                        ItemForm::Unchecked => ScanEvent::ItemJson(json),
                        form => match serde_json::from_slice::<Item>(&json) {
                            Err(e) => {
                                return PumpEnd::Protocol(format!(
                                    "bad item encoding: item #{} is not valid item JSON ({e})",
                                    self.items + 1
                                ))
                            }
                            Ok(item) if form == ItemForm::Decoded => ScanEvent::Item(item),
                            Ok(_) => ScanEvent::ItemJson(json),
                        },
                    };
                    self.items += 1;
                    event
                }
                Frame::Note(note) => {
                    let note = bound_note(note);
                    if self.notes.len() < MAX_NOTES
                        && self.notes_bytes + note.len() <= MAX_NOTES_BYTES
                    {
                        self.notes_bytes += note.len();
                        self.notes.push(note.clone());
                    } else {
                        self.dropped_notes += 1;
                    }
                    ScanEvent::Note(note)
                }
                Frame::Unseen(json) => {
                    self.unseen_seen += 1;
                    let Unseen { key, reason } = match serde_json::from_slice::<Unseen>(&json) {
                        Ok(u) => u,
                        Err(e) => {
                            return PumpEnd::Protocol(format!(
                                "bad unseen record: record #{} is not valid unseen JSON ({e}); \
                                 expected {{\"key\": \"...\", \"reason\": \"...\"}}",
                                self.unseen_seen
                            ))
                        }
                    };
                    let reason = bound_note(reason);
                    let size = key.len() + reason.len();
                    if self.unseen.len() < MAX_NOTES && self.unseen_bytes + size <= MAX_NOTES_BYTES
                    {
                        self.unseen_bytes += size;
                        self.unseen.push(Unseen {
                            key: key.clone(),
                            reason: reason.clone(),
                        });
                    }
                    ScanEvent::Unseen { key, reason }
                }
                Frame::Error(msg) => {
                    self.error = Some(msg);
                    continue;
                }
                Frame::Done { rc, .. } => {
                    self.done = Some(rc);
                    return PumpEnd::Finished;
                }
                Frame::Violation(reason) => return PumpEnd::Violation(reason),
                Frame::Exit(kind) => return PumpEnd::Exit(kind),
                Frame::Run { .. } => {
                    return PumpEnd::Protocol("a run frame from the worker".into())
                }
                Frame::Worker(_) => return PumpEnd::Protocol("a second worker hello".into()),
                Frame::Config(_) => {
                    return PumpEnd::Protocol("a config frame from the worker".into())
                }
            };
            let weight = match &event {
                ScanEvent::Item(i) => {
                    i.key.len()
                        + i.content.as_ref().map_or(0, String::len)
                        + 64 * i.attributes.len()
                }
                ScanEvent::ItemJson(j) => j.len(),
                ScanEvent::Note(n) => n.len(),
                ScanEvent::Unseen { key, reason } => key.len() + reason.len(),
            };
            let permits = weight.clamp(1, frame::MAX_PAYLOAD) as u32;
            let Ok(permit) = self.budget.clone().acquire_many_owned(permits).await else {
                return PumpEnd::ConsumerGone;
            };
            if self.tx.send((event, permit)).await.is_err() {
                return PumpEnd::ConsumerGone;
            }
        }
    }

    pub(super) fn outcome(mut self) -> ScanOutcome {
        match (self.done, self.error.take()) {
            (Some(0), None) => ScanOutcome::Succeeded {
                items: self.items,
                notes: self.notes,
                more_notes: self.dropped_notes,
                more_unseen: self.unseen_seen - self.unseen.len() as u64,
                unseen: self.unseen,
            },
            (Some(_), Some(msg)) => ScanOutcome::Failed(PluginFailure::PluginError(msg)),
            (Some(rc), None) => ScanOutcome::Failed(PluginFailure::PluginError(format!(
                "the scan returned code {rc} without an error message"
            ))),
            (None, _) => ScanOutcome::Failed(PluginFailure::Protocol(
                "the worker exited without reporting the end of the scan".into(),
            )),
        }
    }
}

/// The violation of a stream that did not start with the worker's hello: on a remote node,
/// most likely text printed by a shell start-up file.
pub(super) fn not_greeted(what: &str) -> String {
    let mut what = what.to_owned();
    what.truncate(200);
    format!(
        "the worker did not start with its hello frame ({what}); if the node runs the \
         worker through a shell, a start-up file (~/.bashrc, /etc/profile.d) that prints \
         text for non-interactive shells corrupts the stream: make it print nothing there"
    )
}

/// Cuts a note longer than [`MAX_NOTE_BYTES`] on a char boundary and ends it with a marker
/// saying how long it was; the result, marker included, is at most [`MAX_NOTE_BYTES`].
pub(super) fn bound_note(mut note: String) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    let marker = format!(" [note cut: {} bytes in all]", note.len());
    let mut cut = MAX_NOTE_BYTES - marker.len();
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    note.truncate(cut);
    note.push_str(&marker);
    // Give back the frame-sized buffer: a cut note must not hold megabytes wherever it goes.
    note.shrink_to_fit();
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_notes_are_kept_whole() {
        let n = "x".repeat(MAX_NOTE_BYTES);
        assert_eq!(bound_note(n.clone()), n);
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary_with_a_marker() {
        // One ASCII byte, then two-byte chars: every even offset is inside a char.
        for extra in [1, 2, 3, 1000, 4 << 20] {
            let long = format!("x{}", "é".repeat((MAX_NOTE_BYTES + extra) / 2));
            let cut = bound_note(long.clone());
            assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
            assert!(cut.len() >= MAX_NOTE_BYTES - 64, "{}", cut.len());
            let marker = format!(" [note cut: {} bytes in all]", long.len());
            let kept = cut.strip_suffix(&marker).expect("the marker ends the note");
            assert!(long.starts_with(kept));
            assert!(
                cut.capacity() <= MAX_NOTE_BYTES,
                "holds {} bytes",
                cut.capacity()
            );
        }
    }
}
