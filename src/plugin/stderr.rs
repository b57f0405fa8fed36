//! Captures a worker's stderr (where the plugin's stdout goes too): logs each line with
//! `tracing` under the plugin's name and keeps a bounded tail for failure messages.
//!
//! Everything is bounded: lines are cut at [`MAX_LINE`] bytes, at most [`MAX_LOGGED_LINES`]
//! lines are logged per scan, and the tail keeps the last [`TAIL_BYTES`] bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// Longest stderr line kept or logged; the rest of the line is dropped.
pub const MAX_LINE: usize = 4096;
/// Lines logged per scan; later lines are only kept in the tail.
pub const MAX_LOGGED_LINES: usize = 1000;
/// Bytes of stderr tail kept for failure messages.
pub const TAIL_BYTES: usize = 64 << 10;
/// Bytes of the tail quoted in a failure message.
const QUOTED_BYTES: usize = 2048;

/// A running capture; [`finish`](Self::finish) returns the tail.
pub struct StderrTail {
    lines: Arc<Mutex<Tail>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > TAIL_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len(),
                None => break,
            }
        }
    }
}

/// Starts reading `pipe` in a task.
pub fn capture<R: AsyncRead + Unpin + Send + 'static>(pipe: R, plugin: String) -> StderrTail {
    let lines = Arc::new(Mutex::new(Tail::default()));
    let shared = lines.clone();
    let task = tokio::spawn(async move { read_lines(pipe, &plugin, &shared).await });
    StderrTail { lines, task }
}

async fn read_lines<R: AsyncRead + Unpin>(mut pipe: R, plugin: &str, tail: &Mutex<Tail>) {
    let mut buf = vec![0u8; 16 << 10];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut logged = 0usize;
    let mut emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if *cut {
            text.push_str(" [line truncated]");
        }
        line.clear();
        *cut = false;
        if logged < MAX_LOGGED_LINES {
            tracing::info!(plugin, "stderr: {text}");
        } else if logged == MAX_LOGGED_LINES {
            tracing::info!(plugin, "stderr: further lines are not logged");
        }
        logged += 1;
        if let Ok(mut t) = tail.lock() {
            t.push(text);
        }
    };
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for chunk in buf[..n].split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match chunk.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (chunk, false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            if body.len() > room {
                cut = true;
            }
            line.extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                emit(&mut line, &mut cut);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut cut);
    }
}

impl StderrTail {
    /// Waits briefly for the pipe to close (the worker is dead by now; a straggler holding
    /// the pipe does not block us) and returns the last lines, at most [`QUOTED_BYTES`].
    pub async fn finish(self) -> String {
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let Ok(t) = self.lines.lock() else {
            return String::new();
        };
        let mut quoted: Vec<&str> = Vec::new();
        let mut bytes = 0;
        for l in t.lines.iter().rev() {
            if bytes >= QUOTED_BYTES {
                break;
            }
            bytes += l.len() + 1;
            quoted.push(l);
        }
        quoted.reverse();
        let text = quoted.join("\n");
        let text = text.trim();
        if text.len() <= QUOTED_BYTES {
            return text.to_owned();
        }
        let mut start = text.len() - QUOTED_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quotes_only_the_last_lines() {
        let mut input = Vec::new();
        for i in 0..5000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        input.extend_from_slice(b"last words");
        let text = capture(std::io::Cursor::new(input), "t".into())
            .finish()
            .await;
        assert!(text.len() <= QUOTED_BYTES + 3, "{}", text.len());
        assert!(text.ends_with("line 4999\nlast words"), "{text}");
        assert!(!text.contains("line 1\n"));
    }

    #[tokio::test]
    async fn cuts_long_lines() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\nend\n");
        let text = capture(std::io::Cursor::new(input), "t".into())
            .finish()
            .await;
        assert!(text.starts_with("...x"), "{}", &text[..10]);
        assert!(text.ends_with("x [line truncated]\nend"), "{text}");
        assert!(text.len() <= QUOTED_BYTES + 3);
    }
}
