//! The plugin's config (`[plugin.config]` of a `files` scanner) and its compiled form.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::escape;

/// What to scan and how deeply. Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Absolute paths inside the node root, written like keys (see the crate docs).
    pub paths: Vec<String>,
    /// When non-empty, only items whose key matches one of these globs are emitted
    /// (directories are still walked so deeper matches are found).
    pub include: Vec<String>,
    /// Items whose key matches are skipped; a matching directory is not descended.
    pub exclude: Vec<String>,
    /// Files whose key matches get their text captured as `content`, if they are readable
    /// by others (mode `o+r`) or also match `content_private`.
    pub content: Vec<String>,
    /// Files matching `content` whose text is captured even though others may not read them.
    pub content_private: Vec<String>,
    /// Capture content of files on the built-in secret list ([`SECRET_FILES`]) too.
    pub allow_secret_content: bool,
    /// Largest file whose content is captured, in bytes.
    pub max_content_size: u64,
    /// Largest file that is hashed, in bytes.
    pub max_hash_size: u64,
    /// Do not descend into a directory on another filesystem than its configured path.
    pub one_file_system: bool,
    /// Hashing threads; 0 means one per available core.
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: vec!["/etc".to_owned()],
            include: Vec::new(),
            exclude: Vec::new(),
            content: Vec::new(),
            content_private: Vec::new(),
            allow_secret_content: false,
            max_content_size: 64 * 1024,
            max_hash_size: 64 * 1024 * 1024,
            one_file_system: true,
            threads: 0,
        }
    }
}

/// Files whose content is never captured unless `allow_secret_content` is set, whatever
/// `content` and `content_private` say: password hashes and private keys.
pub const SECRET_FILES: [&str; 7] = [
    "**/shadow",
    "**/gshadow",
    "**/shadow-",
    "**/gshadow-",
    "**/*.key",
    "**/*_key",
    "**/ssh_host_*_key",
];

/// Whether a file's text may be captured, given that its key matches `content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    Yes,
    /// On the built-in secret list.
    Secret,
    /// Not readable by others, and not in `content_private`.
    Private,
}

/// A configured path, split into raw components (no `.`, no empty ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPath {
    /// Normalized key, e.g. `/etc/ssh`; `/` for the node root.
    pub key: String,
    pub components: Vec<Vec<u8>>,
}

/// The config with globs compiled and paths normalized.
pub struct Compiled {
    pub starts: Vec<StartPath>,
    pub include: Option<GlobSet>,
    pub exclude: GlobSet,
    pub content: GlobSet,
    pub content_private: GlobSet,
    /// `None` when `allow_secret_content` is set.
    pub secrets: Option<GlobSet>,
    pub max_content_size: u64,
    pub max_hash_size: u64,
    pub one_file_system: bool,
    pub threads: usize,
}

impl Compiled {
    pub fn new(config: &Config) -> Result<Compiled, String> {
        let mut starts = Vec::new();
        for p in &config.paths {
            starts.push(parse_path(p)?);
        }
        starts.sort_by(|a, b| a.key.cmp(&b.key));
        starts.dedup();
        // A path inside another configured path is already covered by it.
        let covered = |s: &StartPath, all: &[StartPath]| {
            all.iter().any(|o| {
                o.components.len() < s.components.len() && s.components.starts_with(&o.components)
            })
        };
        let starts: Vec<StartPath> = starts
            .iter()
            .filter(|s| !covered(s, &starts))
            .cloned()
            .collect();
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.threads
        };
        Ok(Compiled {
            starts,
            include: if config.include.is_empty() {
                None
            } else {
                Some(globs("include", &config.include)?)
            },
            exclude: globs("exclude", &config.exclude)?,
            content: globs("content", &config.content)?,
            content_private: globs("content_private", &config.content_private)?,
            secrets: if config.allow_secret_content {
                None
            } else {
                Some(globs(
                    "built-in secret list",
                    &SECRET_FILES.map(String::from),
                )?)
            },
            max_content_size: config.max_content_size,
            max_hash_size: config.max_hash_size,
            one_file_system: config.one_file_system,
            threads: threads.clamp(1, 64),
        })
    }

    /// Whether an item with this key is emitted.
    pub fn wants_item(&self, key: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(key))
    }

    pub fn excluded(&self, key: &str) -> bool {
        !self.exclude.is_empty() && self.exclude.is_match(key)
    }

    pub fn wants_content(&self, key: &str) -> bool {
        !self.content.is_empty() && self.content.is_match(key)
    }

    /// Whether the text of a file that [`wants_content`](Self::wants_content) may be captured,
    /// given its `st_mode`.
    pub fn may_capture(&self, key: &str, mode: u32) -> Capture {
        if self.secrets.as_ref().is_some_and(|g| g.is_match(key)) {
            Capture::Secret
        } else if mode & 0o004 == 0 && !self.content_private.is_match(key) {
            Capture::Private
        } else {
            Capture::Yes
        }
    }
}

/// Globs match whole keys; `*` and `?` stop at `/`, `**` crosses directories.
fn globs(field: &str, patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid plugin config: {field} glob {p:?}: {e}"))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| format!("invalid plugin config: {field}: {e}"))
}

fn parse_path(p: &str) -> Result<StartPath, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "invalid plugin config: paths entry {p:?} is not absolute"
        ));
    }
    let mut components = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "invalid plugin config: paths entry {p:?} contains `..`"
                ))
            }
            _ => {
                let raw = escape::unescape(part)
                    .map_err(|e| format!("invalid plugin config: paths: {e}"))?;
                if raw.contains(&0) || raw.contains(&b'/') {
                    return Err(format!(
                        "invalid plugin config: paths entry {p:?} escapes NUL or `/`"
                    ));
                }
                components.push(raw);
            }
        }
    }
    let mut key = String::new();
    for c in &components {
        key.push('/');
        escape::escape_into(c, &mut key);
    }
    if key.is_empty() {
        key.push('/');
    }
    Ok(StartPath { key, components })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c.paths, vec!["/etc"]);
        assert!(c.one_file_system);
        assert!(serde_json::from_str::<Config>(r#"{"pathz": []}"#).is_err());
    }

    #[test]
    fn paths_are_normalized_and_covered_ones_dropped() {
        let c = Config {
            paths: vec![
                "/etc/ssh".into(),
                "/etc/".into(),
                "/./usr//lib".into(),
                "/etc".into(),
            ],
            ..Config::default()
        };
        let k = Compiled::new(&c).unwrap();
        let keys: Vec<&str> = k.starts.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, vec!["/etc", "/usr/lib"]);
    }

    #[test]
    fn dotdot_and_relative_paths_are_refused() {
        for bad in ["/etc/../root", "etc", "/a\\q"] {
            let c = Config {
                paths: vec![bad.into()],
                ..Config::default()
            };
            assert!(Compiled::new(&c).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_and_private_files_are_not_captured_unless_allowed() {
        let c = Config {
            content_private: vec!["/etc/private/*".into(), "/etc/shadow".into()],
            ..Config::default()
        };
        let k = Compiled::new(&c).unwrap();
        for key in [
            "/etc/shadow",
            "/etc/gshadow-",
            "/etc/shadow-",
            "/etc/gshadow",
            "/etc/ssl/private/site.key",
            "/etc/ssh/ssh_host_ed25519_key",
            "/home/u/.ssh/id_key",
            "/etc/private/api_key",
        ] {
            assert_eq!(k.may_capture(key, 0o644), Capture::Secret, "{key}");
        }
        assert_eq!(
            k.may_capture("/etc/ssh/ssh_host_ed25519_key.pub", 0o644),
            Capture::Yes
        );
        assert_eq!(k.may_capture("/etc/shadow.conf", 0o644), Capture::Yes);
        assert_eq!(k.may_capture("/etc/app.conf", 0o640), Capture::Private);
        assert_eq!(k.may_capture("/etc/app.conf", 0o604), Capture::Yes);
        assert_eq!(k.may_capture("/etc/private/db.conf", 0o600), Capture::Yes);
        assert_eq!(
            k.may_capture("/etc/private/sub/db.conf", 0o600),
            Capture::Private
        );

        let c = Config {
            allow_secret_content: true,
            ..c
        };
        let k = Compiled::new(&c).unwrap();
        assert_eq!(k.may_capture("/etc/shadow", 0o640), Capture::Yes);
        assert_eq!(
            k.may_capture("/etc/ssl/private/site.key", 0o600),
            Capture::Private
        );
        assert_eq!(
            k.may_capture("/etc/ssl/private/site.key", 0o644),
            Capture::Yes
        );
    }

    #[test]
    fn star_does_not_cross_directories() {
        let c = Config {
            exclude: vec!["/etc/*.conf".into()],
            ..Config::default()
        };
        let k = Compiled::new(&c).unwrap();
        assert!(k.excluded("/etc/a.conf"));
        assert!(!k.excluded("/etc/d/a.conf"));
    }
}
