//! User and group names from the **node root's** `etc/passwd` and `etc/group`.
//!
//! A node root is often another machine's filesystem (a container image, a mounted disk), so
//! resolving uids with the host's NSS would name the wrong users. The files are opened
//! beneath the root without following symlinks (an image's `/etc/passwd` symlinked to an
//! absolute path must not make us read the host's).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;

use crate::sys;

/// Files larger than this are not read (a sane passwd is a few KiB).
const MAX_DB_SIZE: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Ids {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Ids {
    /// Loads both databases; a missing or unreadable one just leaves names unknown.
    pub fn load(root: &OwnedFd) -> Ids {
        Ids {
            users: read_db(root, b"passwd")
                .map(|t| parse(&t))
                .unwrap_or_default(),
            groups: read_db(root, b"group")
                .map(|t| parse(&t))
                .unwrap_or_default(),
        }
    }

    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

fn read_db(root: &OwnedFd, file: &[u8]) -> Option<Vec<u8>> {
    let comps = [b"etc".to_vec(), file.to_vec()];
    let dir = sys::open_parent(root, &comps).ok()?;
    let name = CString::new(file).ok()?;
    let fd = sys::open_file(&dir, &name).ok()?;
    let st = sys::fstat(&fd).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = sys::read(&fd, &mut buf).ok()?;
        if n == 0 || out.len() + n > MAX_DB_SIZE {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Some(out)
}

/// Parses `name:x:id:...` lines (the layout passwd and group share); the first name for an
/// id wins, like NSS.
fn parse(text: &[u8]) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in String::from_utf8_lossy(text).lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty()
            || name.starts_with('#')
            || name.starts_with('+')
            || name.starts_with('-')
        {
            continue;
        }
        if let Ok(id) = id.trim().parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let m = parse(b"root:x:0:0:root:/root:/bin/bash\n# c\nbad\nalice:x:1000:1000::/home/a:/bin/sh\ndup:x:0:0::/:/\n");
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(m.len(), 2);
    }
}
