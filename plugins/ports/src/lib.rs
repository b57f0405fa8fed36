//! The `ports` scanner plugin (`libvigil_ports.so`): listening TCP sockets and bound UDP
//! sockets on the host, so drift shows a new listener (or one that went away).
//!
//! Live data only: it reads `/proc/net/{tcp,tcp6,udp,udp6}` and only when the node root is the
//! host's `/`. For any other root the scan is empty with the note
//! `ports: live data only, root is not /` (an image has no sockets). `/proc/net` is the
//! daemon's own network namespace.
//!
//! Reported: TCP sockets in state `0A` (LISTEN), and UDP sockets in state `07` (unconnected)
//! with a non-zero local port. Addresses are decoded from the kernel's hex: each 32-bit word
//! is printed in host byte order, so on little-endian `0100007F` is `127.0.0.1`, and an IPv6
//! address is four such words.
//!
//! Items, **emitted sorted by key (byte-wise)** because downstream diffing is a streaming
//! merge over sorted keys: key `PROTO:ADDR:PORT`, e.g. `tcp:0.0.0.0:22`, `tcp6:[::]:22`,
//! `udp:127.0.0.1:323`. Attributes: `protocol`, `address`, `port`, `inode`, and, when the
//! owning process is visible, `pid` and `process` (its `comm`). Several sockets on one
//! address and port (`SO_REUSEPORT`) are one item, attributed to the lowest inode.
//!
//! Owners are found by scanning `/proc/[pid]/fd/*` for `socket:[INODE]` links, in pid order,
//! stopping once every socket has an owner or after [`MAX_FDS`] descriptors. Processes whose
//! descriptors are not readable (the daemon is not root) are skipped, with one summary note.
//!
//! `pid` and `inode` change on every restart, so they are declared volatile.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Deserialize;
use vigil_plugin::{Emitter, Item, Plugin, ScanContext};
use vigil_rootfs::Scan;

/// Most file descriptors examined when attributing sockets to processes.
pub const MAX_FDS: usize = 1_000_000;

/// The plugin's `[plugin.config]`; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Attribute sockets to processes through `/proc/[pid]/fd` (default true).
    pub processes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { processes: true }
    }
}

/// One of the four socket tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Tcp6, Proto::Udp, Proto::Udp6];

    /// Protocol name, also the table's file name under `/proc/net`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Tcp6 => "tcp6",
            Proto::Udp => "udp",
            Proto::Udp6 => "udp6",
        }
    }

    fn is_v6(self) -> bool {
        matches!(self, Proto::Tcp6 | Proto::Udp6)
    }

    /// The state a reportable socket is in: LISTEN for TCP, unconnected for UDP.
    fn wanted_state(self) -> &'static str {
        match self {
            Proto::Tcp | Proto::Tcp6 => "0A",
            Proto::Udp | Proto::Udp6 => "07",
        }
    }
}

/// A listening (or bound) socket from a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Socket {
    /// `tcp:0.0.0.0:22`, `tcp6:[::]:22`.
    pub fn key(&self) -> String {
        match self.address {
            IpAddr::V4(a) => format!("{}:{a}:{}", self.proto.name(), self.port),
            IpAddr::V6(a) => format!("{}:[{a}]:{}", self.proto.name(), self.port),
        }
    }
}

/// Decodes a `/proc/net` hex address (8 hex digits for IPv4, 32 for IPv6); each 32-bit word
/// is in host byte order.
pub fn parse_address(hex: &str, v6: bool) -> Option<IpAddr> {
    let words: Vec<u32> = if hex.len() == if v6 { 32 } else { 8 } && hex.is_ascii() {
        (0..hex.len() / 8)
            .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16))
            .collect::<Result<_, _>>()
            .ok()?
    } else {
        return None;
    };
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    if v6 {
        let b: [u8; 16] = bytes.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        let b: [u8; 4] = bytes.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    }
}

/// Parses one table's text: the reportable sockets, and how many lines were malformed.
pub fn parse_table(text: &str, proto: Proto) -> (Vec<Socket>, usize) {
    let mut sockets = Vec::new();
    let mut malformed = 0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        match parse_line(line, proto) {
            Some(Some(s)) => sockets.push(s),
            Some(None) => {}
            None => malformed += 1,
        }
    }
    (sockets, malformed)
}

/// None: malformed. Some(None): a socket we do not report.
fn parse_line(line: &str, proto: Proto) -> Option<Option<Socket>> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let (addr, port) = f[1].split_once(':')?;
    let address = parse_address(addr, proto.is_v6())?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = f[9].parse::<u64>().ok()?;
    if f[3] != proto.wanted_state() || port == 0 {
        return Some(None);
    }
    Some(Some(Socket {
        proto,
        address,
        port,
        inode,
    }))
}

/// Socket inode → lowest owning pid and its `comm`, from `proc/[pid]/fd`. Also returns how
/// many processes' descriptors were unreadable and whether [`MAX_FDS`] cut the search short.
pub fn socket_owners(
    proc: &Path,
    inodes: &BTreeSet<u64>,
) -> (BTreeMap<u64, (u32, String)>, usize, bool) {
    let mut owners = BTreeMap::new();
    let mut denied = 0;
    let mut pids: Vec<u32> = match fs::read_dir(proc) {
        Ok(d) => d
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return (owners, 0, false),
    };
    pids.sort_unstable();
    let mut examined = 0;
    for pid in pids {
        if owners.len() == inodes.len() {
            break;
        }
        let fd_dir = proc.join(pid.to_string()).join("fd");
        let entries = match fs::read_dir(&fd_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                denied += 1;
                continue;
            }
            Err(_) => continue, // exited, or a kernel thread
        };
        for entry in entries.flatten() {
            examined += 1;
            if examined > MAX_FDS {
                return (owners, denied, true);
            }
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|i| inodes.contains(i) && !owners.contains_key(i)) {
                let comm =
                    fs::read_to_string(proc.join(pid.to_string()).join("comm")).unwrap_or_default();
                owners.insert(inode, (pid, comm.trim_end().to_owned()));
            }
        }
    }
    (owners, denied, false)
}

/// Scans the socket tables under `proc` (the host's `/proc`, or a fixture tree in tests).
pub fn scan_proc(proc: &Path, config: &Config) -> Scan {
    let mut notes = Vec::new();
    let mut by_key: BTreeMap<String, Socket> = BTreeMap::new();
    for proto in Proto::ALL {
        let path = proc.join("net").join(proto.name());
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("ports: could not read {}: {e}", path.display()));
                continue;
            }
        };
        let (sockets, malformed) = parse_table(&text, proto);
        if malformed > 0 {
            notes.push(format!(
                "ports: {malformed} unparsable lines in {} skipped",
                path.display()
            ));
        }
        for s in sockets {
            let key = s.key();
            match by_key.get(&key) {
                Some(existing) if existing.inode <= s.inode => {}
                _ => {
                    by_key.insert(key, s);
                }
            }
        }
    }
    let inodes: BTreeSet<u64> = by_key.values().map(|s| s.inode).collect();
    let mut owners = BTreeMap::new();
    if config.processes && !inodes.is_empty() {
        let (found, denied, truncated) = socket_owners(proc, &inodes);
        owners = found;
        if truncated {
            notes.push(format!(
                "ports: stopped looking for socket owners after {MAX_FDS} file descriptors"
            ));
        }
        if denied > 0 && owners.len() < inodes.len() {
            notes.push(format!(
                "ports: open files of {denied} processes not readable; owners of {} sockets unknown (run the daemon as root to see them)",
                inodes.len() - owners.len()
            ));
        }
    }
    let items = by_key
        .into_iter()
        .map(|(key, s)| {
            let mut item = Item::new(key)
                .attr("protocol", s.proto.name())
                .attr("address", s.address.to_string())
                .attr("port", u32::from(s.port))
                .attr("inode", i64::try_from(s.inode).unwrap_or(i64::MAX));
            if let Some((pid, comm)) = owners.get(&s.inode) {
                item = item.attr("pid", *pid).attr("process", comm.as_str());
            }
            item
        })
        .collect();
    Scan { items, notes }.sorted()
}

/// The plugin type exported through the vigil ABI.
pub struct Ports;

impl Plugin for Ports {
    const NAME: &'static CStr = c"ports";
    const VERSION: &'static CStr = c"0.1.0";
    const VOLATILE_ATTRIBUTES: Option<&'static CStr> = Some(c"pid,inode");

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let config: Config = ctx.config()?;
        if !ctx.root_is_host() {
            return out
                .note("ports: live data only, root is not /")
                .map_err(|e| e.to_string());
        }
        scan_proc(&ctx.root.join("proc"), &config).emit(out)
    }
}

vigil_plugin::export_plugin!(Ports);

#[cfg(test)]
mod tests;
