//! Misbehaving SMTP servers for the fault cases, scripted in Rust: one that accepts and
//! never answers, one that answers 4xx or 5xx by recipient.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::PATIENCE;

/// Accepts connections and never says a word; counts them.
pub fn silent_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, count)
}

/// A scripted SMTP server for fault cases: RCPT to `perm…` gets 550, to `temp…` gets 451,
/// everything else is accepted. Records every RCPT address it was offered, and `DATA <rcpt>`
/// once it has read a whole message. A message to `slow…` is answered 250 only a second
/// after it was read (a server busy with its queue), so a test can act in between.
pub fn scripted_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rcpts = Arc::new(Mutex::new(Vec::new()));
    let r = rcpts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || {
                let _ = scripted_session(stream, &r);
            });
        }
    });
    (port, rcpts)
}

fn scripted_session(stream: TcpStream, rcpts: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 scripted ESMTP\r\n")?;
    let mut line = String::new();
    let mut slow = false;
    let mut rcpt = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 scripted\r\n"
        } else if upper.starts_with("RCPT") {
            rcpts.lock().unwrap().push(line.trim().to_owned());
            rcpt = line.trim().to_owned();
            slow = upper.contains("<SLOW");
            if upper.contains("<PERM") {
                b"550 5.1.1 no such mailbox\r\n"
            } else if upper.contains("<TEMP") {
                b"451 4.3.0 try again later\r\n"
            } else {
                b"250 ok\r\n"
            }
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            while data != ".\r\n" {
                data.clear();
                if input.read_line(&mut data)? == 0 {
                    return Ok(());
                }
            }
            rcpts.lock().unwrap().push(format!("DATA {rcpt}"));
            if slow {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"250 ok\r\n"
        };
        out.write_all(reply)?;
    }
}
