//! Turns the worker's frames into scan events and the scan's tally, for the supervisor.
//!
//! Decoding happens here, on the daemon side: an item that is not valid item JSON, a note
//! that is not UTF-8 or frames out of order end the scan with a protocol violation. Each
//! event holds permits of a byte budget until the consumer takes it, so buffered memory is
//! bounded in bytes as well as in count.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio::process::ChildStdout;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use vigil_plugin::Item;

use super::frame::{self, Frame, PluginInfo};
use super::supervisor::{ItemForm, PluginFailure, ScanEvent, ScanOutcome, MAX_NOTES};

/// Reads frames and turns them into events and the scan's tally.
pub(super) struct Pump {
    pub(super) tx: mpsc::Sender<(ScanEvent, OwnedSemaphorePermit)>,
    pub(super) budget: Arc<Semaphore>,
    pub(super) hello: Option<oneshot::Sender<PluginInfo>>,
    pub(super) form: ItemForm,
    pub(super) items: u64,
    pub(super) notes: Vec<String>,
    pub(super) dropped_notes: usize,
    pub(super) error: Option<String>,
    pub(super) done: Option<i32>,
}

pub(super) enum PumpEnd {
    /// Done frame or end of stream.
    Finished,
    Protocol(String),
    ConsumerGone,
}

impl Pump {
    pub(super) async fn run(&mut self, stdout: ChildStdout) -> PumpEnd {
        let mut reader = BufReader::with_capacity(256 << 10, stdout);
        loop {
            let frame = match frame::read_frame(&mut reader).await {
                Ok(Some(f)) => f,
                Ok(None) => return PumpEnd::Finished,
                Err(e) => return PumpEnd::Protocol(e.to_string()),
            };
            if self.hello.is_some() && !matches!(frame, Frame::Hello(_) | Frame::Violation(_)) {
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
                    let item = match serde_json::from_slice::<Item>(&json) {
                        Ok(item) => item,
                        Err(e) => {
                            return PumpEnd::Protocol(format!(
                                "bad item encoding: item #{} is not valid item JSON ({e})",
                                self.items + 1
                            ))
                        }
                    };
                    self.items += 1;
                    match self.form {
                        ItemForm::Decoded => ScanEvent::Item(item),
                        ItemForm::Json => ScanEvent::ItemJson(json),
                    }
                }
                Frame::Note(note) => {
                    if self.notes.len() < MAX_NOTES {
                        self.notes.push(note.clone());
                    } else {
                        self.dropped_notes += 1;
                    }
                    ScanEvent::Note(note)
                }
                Frame::Error(msg) => {
                    self.error = Some(msg);
                    continue;
                }
                Frame::Done { rc, .. } => {
                    self.done = Some(rc);
                    return PumpEnd::Finished;
                }
                Frame::Violation(reason) => return PumpEnd::Protocol(reason),
            };
            let weight = match &event {
                ScanEvent::Item(i) => {
                    i.key.len()
                        + i.content.as_ref().map_or(0, String::len)
                        + 64 * i.attributes.len()
                }
                ScanEvent::ItemJson(j) => j.len(),
                ScanEvent::Note(n) => n.len(),
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
            (Some(0), None) => {
                if self.dropped_notes > 0 {
                    self.notes
                        .push(format!("{} more notes were not kept", self.dropped_notes));
                }
                ScanOutcome::Succeeded {
                    items: self.items,
                    notes: self.notes,
                }
            }
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
