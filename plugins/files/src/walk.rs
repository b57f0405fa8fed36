//! The walker: an iterative, fd-based, depth-first traversal that numbers every entry in
//! output order and hands it on, without ever holding more than the directories on the
//! current path (memory ∝ depth × width).
//!
//! Ordering: within a directory, each entry contributes an *entry event* sorted by its key
//! and, if it is a directory to descend, a *descend event* sorted by its key followed by
//! `/`. Processing the events in that order makes the output exactly the byte-wise sorted
//! order of keys: a subtree `/a/...` is spliced in after `/a-b` and `/a.b` (`-` and `.` sort
//! before `/`), while the item `/a` itself comes before them.

use std::cmp::Ordering;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::config::{Compiled, StartPath};
use crate::describe::{Job, Outcome};
use crate::{escape, sys};

/// Messages to the emitter, which restores order by sequence number.
pub enum Msg {
    Done(u64, Outcome),
    /// The walker is finished; `total` sequence numbers were handed out.
    End {
        total: u64,
    },
}

/// The walker gave up because the emitter went away (the host stopped the scan).
pub struct Gone;

struct Ent {
    name: CString,
    key: String,
    d_type: u8,
    /// Index into the config's start paths (top level only).
    start: usize,
}

struct Frame {
    /// `None` for the virtual top level made of the configured paths.
    dir: Option<Arc<OwnedFd>>,
    /// `st_dev` of the configured path this frame descends from.
    dev: u64,
    entries: Vec<Ent>,
    /// (index into `entries`, is a descend event), sorted.
    order: Vec<(u32, bool)>,
    pos: usize,
}

pub struct Walker<'a> {
    pub cfg: &'a Compiled,
    pub root: Arc<OwnedFd>,
    /// A bounded channel used as a semaphore: one permit per sequence number in flight.
    pub permits: Sender<()>,
    pub jobs: Sender<(u64, Job)>,
    pub results: Sender<Msg>,
    pub seq: u64,
    pub dirbuf: Vec<u8>,
}

fn join(parent: &str, esc: &str) -> String {
    let mut k = String::with_capacity(parent.len() + esc.len() + 1);
    if parent != "/" {
        k.push_str(parent);
    }
    k.push('/');
    k.push_str(esc);
    k
}

/// Compares `a` (+ `/` if `a_dir`) with `b` (+ `/` if `b_dir`) byte-wise, without allocating.
fn cmp_events(a: &str, a_dir: bool, b: &str, b_dir: bool) -> Ordering {
    let a = a.bytes().chain(a_dir.then_some(b'/'));
    let b = b.bytes().chain(b_dir.then_some(b'/'));
    a.cmp(b)
}

fn sort_frame(entries: &[Ent], order: &mut [(u32, bool)]) {
    order.sort_unstable_by(|x, y| {
        cmp_events(
            &entries[x.0 as usize].key,
            x.1,
            &entries[y.0 as usize].key,
            y.1,
        )
    });
}

/// Resolves a configured path (not the root itself) beneath the root without symlinks: its
/// parent directory, its last name and its `lstat`.
fn resolve_start(root: &OwnedFd, start: &StartPath) -> io::Result<(OwnedFd, CString, libc::stat)> {
    let last = start
        .components
        .last()
        .ok_or_else(|| io::Error::other("the root"))?;
    let parent = sys::open_parent(root, &start.components)?;
    let name = CString::new(last.as_slice()).map_err(io::Error::other)?;
    let st = sys::lstat_at(&parent, &name)?;
    Ok((parent, name, st))
}

fn dtype_of(mode: libc::mode_t) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        _ => libc::DT_UNKNOWN,
    }
}

impl Walker<'_> {
    fn next_seq(&mut self) -> Result<u64, Gone> {
        self.permits.send(()).map_err(|_| Gone)?;
        let s = self.seq;
        self.seq += 1;
        Ok(s)
    }

    fn job(&mut self, job: Job) -> Result<(), Gone> {
        let seq = self.next_seq()?;
        self.jobs.send((seq, job)).map_err(|_| Gone)
    }

    fn note(&mut self, msg: String) -> Result<(), Gone> {
        let seq = self.next_seq()?;
        self.results
            .send(Msg::Done(seq, Outcome::note(msg)))
            .map_err(|_| Gone)
    }

    /// `key` and everything below it could not be seen.
    fn unseen(&mut self, key: &str, reason: String) -> Result<(), Gone> {
        let seq = self.next_seq()?;
        self.results
            .send(Msg::Done(seq, Outcome::unseen(key.to_owned(), reason)))
            .map_err(|_| Gone)
    }

    pub fn run(&mut self) -> Result<(), Gone> {
        let mut stack = vec![self.top_frame()];
        while let Some(frame) = stack.last_mut() {
            let Some(&(idx, descend)) = frame.order.get(frame.pos) else {
                stack.pop();
                continue;
            };
            frame.pos += 1;
            let ent = &frame.entries[idx as usize];
            let child = match (&frame.dir, descend) {
                (Some(dir), false) => {
                    let job = Job {
                        dir: Arc::clone(dir),
                        name: Some(ent.name.clone()),
                        key: ent.key.clone(),
                        d_type: ent.d_type,
                        content: self.cfg.wants_content(&ent.key),
                    };
                    self.job(job)?;
                    None
                }
                (Some(dir), true) => {
                    let (dir, dev, name, key) = (
                        Arc::clone(dir),
                        frame.dev,
                        ent.name.clone(),
                        ent.key.clone(),
                    );
                    self.descend(&dir, &name, key, Some(dev))?
                }
                (None, false) => {
                    let start = &self.cfg.starts[ent.start];
                    self.start_entry(start)?;
                    None
                }
                (None, true) => {
                    let start = &self.cfg.starts[ent.start];
                    match start.components.last() {
                        None => self.descend(&self.root.clone(), c".", start.key.clone(), None)?,
                        Some(_) => match resolve_start(&self.root, start) {
                            Ok((parent, name, _)) => {
                                self.descend(&parent, &name, start.key.clone(), None)?
                            }
                            // Reported by the entry event, when there is one.
                            Err(_) if self.cfg.wants_item(&start.key) => None,
                            Err(e) => {
                                let key = start.key.clone();
                                self.start_error(&key, &e)?;
                                None
                            }
                        },
                    }
                }
            };
            if let Some(f) = child {
                stack.push(f);
            }
        }
        Ok(())
    }

    /// The virtual top level: each configured path as an entry and a descend event.
    fn top_frame(&self) -> Frame {
        let mut entries = Vec::new();
        let mut order = Vec::new();
        for (i, s) in self.cfg.starts.iter().enumerate() {
            if self.cfg.excluded(&s.key) {
                continue;
            }
            let n = entries.len() as u32;
            entries.push(Ent {
                name: CString::default(),
                key: s.key.clone(),
                d_type: libc::DT_UNKNOWN,
                start: i,
            });
            if self.cfg.wants_item(&s.key) {
                order.push((n, false));
            }
            order.push((n, true));
        }
        // The root start covers everything, so it is alone and needs no special ordering.
        sort_frame(&entries, &mut order);
        Frame {
            dir: None,
            dev: 0,
            entries,
            order,
            pos: 0,
        }
    }

    /// Emits the item for a configured path, resolved beneath the root without symlinks.
    fn start_entry(&mut self, start: &StartPath) -> Result<(), Gone> {
        let key = start.key.clone();
        let content = self.cfg.wants_content(&key);
        if start.components.is_empty() {
            let dir = Arc::clone(&self.root);
            return self.job(Job {
                dir,
                name: None,
                key,
                d_type: libc::DT_DIR,
                content,
            });
        }
        match resolve_start(&self.root, start) {
            Ok((parent, name, st)) => self.job(Job {
                dir: Arc::new(parent),
                name: Some(name),
                key,
                d_type: dtype_of(st.st_mode),
                content,
            }),
            Err(e) => self.start_error(&key, &e),
        }
    }

    /// Says why configured path `key` could not be resolved.
    fn start_error(&mut self, key: &str, e: &io::Error) -> Result<(), Gone> {
        match e.raw_os_error() {
            // Not there, or not reachable without a symlink: what the tree really holds.
            Some(libc::ENOENT) => self.note(format!("path does not exist: {key}")),
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => self.note(format!(
                "not scanned: {key}: a parent is a symlink or not a directory"
            )),
            // There may be something there that we cannot see.
            Some(libc::EACCES) | Some(libc::EPERM) => {
                self.unseen(key, "permission denied".to_owned())
            }
            _ => self.unseen(key, format!("cannot stat: {e}")),
        }
    }

    /// Opens and lists a directory; `dev` is the filesystem of its configured path (`None`
    /// when this directory is the configured path).
    fn descend(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        key: String,
        dev: Option<u64>,
    ) -> Result<Option<Frame>, Gone> {
        let fd = match sys::open_dir(parent, name) {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => self
                        .unseen(&key, "permission denied".to_owned())
                        .map(|_| None),
                    // Swapped for a symlink or a file, or gone: the entry event says what it is.
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::ENOENT) => Ok(None),
                    _ => self
                        .unseen(&key, format!("cannot open directory: {e}"))
                        .map(|_| None),
                };
            }
        };
        let st = match sys::fstat(&fd) {
            Ok(st) => st,
            Err(e) => {
                return self
                    .unseen(&key, format!("cannot stat directory: {e}"))
                    .map(|_| None)
            }
        };
        let dev = match dev {
            Some(d) if self.cfg.one_file_system && d != st.st_dev => {
                return self
                    .note(format!("not descended: other filesystem: {key}"))
                    .map(|_| None);
            }
            Some(d) => d,
            None => st.st_dev,
        };
        let mut raw = Vec::new();
        if let Err(e) = sys::list_dir(&fd, &mut self.dirbuf, &mut raw) {
            // What was listed before the error is still walked.
            self.unseen(&key, format!("cannot list directory: {e}"))?;
        }
        let mut entries = Vec::with_capacity(raw.len());
        let mut order = Vec::with_capacity(raw.len() + raw.len() / 4);
        let mut esc = String::new();
        for r in raw {
            esc.clear();
            escape::escape_into(r.name.to_bytes(), &mut esc);
            let child = join(&key, &esc);
            if self.cfg.excluded(&child) {
                continue;
            }
            let mut d_type = r.d_type;
            if d_type == libc::DT_UNKNOWN {
                if let Ok(st) = sys::lstat_at(&fd, &r.name) {
                    d_type = dtype_of(st.st_mode);
                }
            }
            let n = entries.len() as u32;
            let item = self.cfg.wants_item(&child);
            if item {
                order.push((n, false));
            }
            if d_type == libc::DT_DIR {
                order.push((n, true));
            } else if !item {
                continue;
            }
            entries.push(Ent {
                name: r.name,
                key: child,
                d_type,
                start: 0,
            });
        }
        sort_frame(&entries, &mut order);
        Ok(Some(Frame {
            dir: Some(Arc::new(fd)),
            dev,
            entries,
            order,
            pos: 0,
        }))
    }
}
