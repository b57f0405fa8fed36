//! The vigil scanner-plugin ABI, version 1, and the helpers a Rust plugin author uses.
//!
//! A plugin is a shared library that exports one symbol, [`SYMBOL`] (`vigil_plugin_v1`), a
//! function returning a pointer to a static [`Descriptor`]. The host (vigil's worker process)
//! calls the descriptor's `scan` entry point with the node root and the plugin's config, and
//! the plugin streams records back through the [`Sink`] callback. Records are UTF-8 JSON; an
//! item is `{"key": "...", "attributes": {...}, "content": "..."}` (see [`Item`]).
//!
//! Nothing here does I/O or depends on an async runtime: the crate is the contract, usable
//! from a plugin written in Rust and mirrored for C by `vigil_plugin.h`.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The ABI version this crate speaks. A host refuses a descriptor with another version.
pub const ABI_VERSION: u32 = 1;

/// Name of the exported symbol, NUL-terminated for `dlsym`.
pub const SYMBOL: &[u8] = b"vigil_plugin_v1\0";

/// Record kind: an item, JSON-encoded [`Item`].
pub const RECORD_ITEM: u32 = 1;
/// Record kind: a coverage note, UTF-8 text: something the scan could not see (for example
/// `permission denied: /etc/shadow`). Notes do not fail the scan.
pub const RECORD_NOTE: u32 = 2;
/// Record kind: the scan's failure message, UTF-8 text. Sent before `scan` returns non-zero.
pub const RECORD_ERROR: u32 = 3;
/// Record kind: a subtree the scan could not see, JSON-encoded [`Unseen`]: the item `key` and
/// every item whose key starts with `key` + `/` (with `key` `/`, every key that starts with
/// `/`). Such items missing from this scan were not seen, which is not the same as removed.
/// Items that were emitted anyway (a directory's own metadata, entries listed before an
/// error) are still what they say. Does not fail the scan.
pub const RECORD_UNSEEN: u32 = 4;

/// `scan` return value: the scan completed.
pub const SCAN_OK: i32 = 0;
/// `scan` return value: the scan failed; the reason was sent as a [`RECORD_ERROR`].
pub const SCAN_FAILED: i32 = 1;
/// `scan` return value: the plugin panicked (only set by the Rust export macro).
pub const SCAN_PANICKED: i32 = 2;

/// Callback through which a plugin hands records to the host. Returns 0 to continue; any
/// other value means the host wants the scan to stop (the plugin should return promptly).
/// The host copies `data` before returning; the plugin keeps ownership of its buffer.
///
/// Not thread-safe: call it only from the thread that called `scan` (or serialize the calls
/// yourself), and only during `scan`. [`Emitter`] is neither `Send` nor `Sync` for this
/// reason: a plugin with worker threads sends their results back to the scan's thread.
pub type EmitFn =
    unsafe extern "C" fn(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32;

/// What the host passes to `scan`. Valid only for the duration of the call.
#[repr(C)]
pub struct ScanRequest {
    /// The node root, as raw path bytes (not NUL-terminated).
    pub root: *const u8,
    pub root_len: usize,
    /// The plugin's `[plugin.config]` table, encoded as a JSON object (UTF-8).
    pub config: *const u8,
    pub config_len: usize,
}

/// Where records go. Valid only for the duration of the `scan` call.
#[repr(C)]
pub struct Sink {
    pub ctx: *mut c_void,
    pub emit: EmitFn,
}

/// The descriptor a plugin exports. Hosts read only the first `struct_size` bytes, so later
/// ABI revisions may append fields without breaking older plugins.
#[repr(C)]
pub struct Descriptor {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<Descriptor>()` as the plugin was compiled.
    pub struct_size: u32,
    /// Plugin name, NUL-terminated UTF-8, static.
    pub name: *const c_char,
    /// Plugin version, NUL-terminated UTF-8, static.
    pub version: *const c_char,
    /// Comma-separated attribute names whose changes are noise by nature (for example
    /// `atime`), ignored by drift unless configured otherwise. May be NULL.
    pub volatile_attributes: *const c_char,
    /// Runs one scan. Returns [`SCAN_OK`] or non-zero after sending a [`RECORD_ERROR`].
    pub scan: unsafe extern "C" fn(request: *const ScanRequest, sink: *const Sink) -> i32,
}

/// A descriptor in a `static`: raw pointers are not `Sync`, but these point at static,
/// immutable data, so sharing them between threads is sound.
#[repr(transparent)]
pub struct StaticDescriptor(pub Descriptor);
// SAFETY: every pointer in a StaticDescriptor refers to 'static immutable data.
unsafe impl Sync for StaticDescriptor {}

/// An attribute value: attributes are flat, so only scalars are allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
}

/// Accepts what `#[serde(untagged)]` would (a bool, an integer that fits `i64`, a string),
/// by the token's type: the derived untagged form buffers every value and builds an error
/// (a formatted message) for each variant it tries first, which the daemon paid for every
/// attribute of every item it stores.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bool, an integer or a string")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
        }
        d.deserialize_any(Scalar)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// One thing a plugin observed: a stable key and a flat map of attributes, optionally with
/// captured text content (bounded by the plugin) for line diffs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl Item {
    pub fn new(key: impl Into<String>) -> Self {
        Item {
            key: key.into(),
            ..Item::default()
        }
    }

    /// Builder-style attribute setter.
    pub fn attr(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }
}

/// The payload of a [`RECORD_UNSEEN`] record: `{"key": "/etc/ssl/private", "reason":
/// "permission denied"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unseen {
    /// The item key at the top of what could not be seen.
    pub key: String,
    /// Why, for the operator (short, like a note).
    pub reason: String,
}

impl Unseen {
    /// Whether `item_key` is `self.key` or below it.
    pub fn covers(&self, item_key: &str) -> bool {
        match item_key.strip_prefix(self.key.as_str()) {
            Some("") => true,
            Some(rest) => self.key.ends_with('/') || rest.starts_with('/'),
            None => false,
        }
    }
}

/// What a Rust plugin's `scan` receives.
#[derive(Debug)]
pub struct ScanContext {
    /// The node root. Plugins must never read outside it.
    pub root: PathBuf,
    /// The plugin's config (the `[plugin.config]` table), `{}` when none was given.
    pub config: serde_json::Value,
}

impl ScanContext {
    /// Deserializes the config into the plugin's own type; the error names the bad field.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| format!("invalid plugin config: {e}"))
    }

    /// True when the node root is the host's own `/`, where live data (`/proc`) is meaningful.
    pub fn root_is_host(&self) -> bool {
        self.root == std::path::Path::new("/")
    }
}

/// The host asked the scan to stop (it was cancelled or the pipe closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scan stopped by the host")
    }
}

/// Hands records to the host. Created by the export macro around the host's [`Sink`].
pub struct Emitter<'a> {
    sink: &'a Sink,
    buf: Vec<u8>,
}

impl<'a> Emitter<'a> {
    /// # Safety
    /// `sink` must be the valid sink passed to the current `scan` call.
    pub unsafe fn from_sink(sink: &'a Sink) -> Self {
        Emitter {
            sink,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one item.
    pub fn item(&mut self, item: &Item) -> Result<(), Stopped> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, item)
            .expect("serializing an Item into memory cannot fail");
        let buf = std::mem::take(&mut self.buf);
        let r = self.raw(RECORD_ITEM, &buf);
        self.buf = buf;
        r
    }

    /// Sends a coverage note: something the scan could not see.
    pub fn note(&mut self, message: &str) -> Result<(), Stopped> {
        self.raw(RECORD_NOTE, message.as_bytes())
    }

    /// Says that `key` and everything below it could not be seen (see [`RECORD_UNSEEN`]).
    pub fn unseen(&mut self, key: &str, reason: &str) -> Result<(), Stopped> {
        let record = serde_json::json!({"key": key, "reason": reason});
        self.raw(RECORD_UNSEEN, record.to_string().as_bytes())
    }

    fn raw(&mut self, kind: u32, data: &[u8]) -> Result<(), Stopped> {
        // SAFETY: the sink is valid for the duration of the scan (contract of from_sink).
        let rc = unsafe { (self.sink.emit)(self.sink.ctx, kind, data.as_ptr(), data.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    /// Sends the failure message (used by the export macro).
    #[doc(hidden)]
    pub fn error(&mut self, message: &str) {
        let _ = self.raw(RECORD_ERROR, message.as_bytes());
    }
}

/// A scanner plugin written in Rust. Implement it, then call [`export_plugin!`].
pub trait Plugin {
    /// Plugin name, e.g. `c"files"`.
    const NAME: &'static CStr;
    /// Plugin version, e.g. `c"1.0.0"`.
    const VERSION: &'static CStr;
    /// Comma-separated volatile attribute names, e.g. `Some(c"atime")`.
    const VOLATILE_ATTRIBUTES: Option<&'static CStr> = None;

    /// Runs one scan, emitting items as they are found. A returned error fails the scan with
    /// that message; `Stopped` from the emitter should be propagated as an error quickly.
    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String>;
}

/// The body of the exported `scan` entry point, shared by every Rust plugin: decodes the
/// request, runs [`Plugin::scan`] under `catch_unwind`, and reports failures as records.
///
/// # Safety
/// `request` and `sink` must be valid for the duration of the call, as the ABI promises.
#[doc(hidden)]
pub unsafe fn run_scan<P: Plugin>(request: *const ScanRequest, sink: *const Sink) -> i32 {
    if request.is_null() || sink.is_null() {
        return SCAN_FAILED;
    }
    let sink = &*sink;
    let request = &*request;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = Emitter::from_sink(sink);
        let root = slice_of(request.root, request.root_len);
        let config = slice_of(request.config, request.config_len);
        let ctx = match decode_context(root, config) {
            Ok(ctx) => ctx,
            Err(e) => {
                out.error(&e);
                return SCAN_FAILED;
            }
        };
        match P::scan(&ctx, &mut out) {
            Ok(()) => SCAN_OK,
            Err(e) => {
                out.error(&e);
                SCAN_FAILED
            }
        }
    }));
    match result {
        Ok(rc) => rc,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned());
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Emitter::from_sink(sink).error(&format!("plugin panicked: {msg}"));
            }));
            SCAN_PANICKED
        }
    }
}

unsafe fn slice_of<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

fn decode_context(root: &[u8], config: &[u8]) -> Result<ScanContext, String> {
    use std::os::unix::ffi::OsStrExt;
    if root.is_empty() {
        return Err("the host passed an empty node root".to_owned());
    }
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(root));
    let config = if config.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(config)
            .map_err(|e| format!("plugin config is not valid JSON: {e}"))?
    };
    Ok(ScanContext { root, config })
}

/// Exports a [`Plugin`] implementation as a vigil plugin: defines the `vigil_plugin_v1`
/// symbol and its static descriptor.
///
/// ```ignore
/// struct Hello;
/// impl vigil_plugin::Plugin for Hello { /* NAME, VERSION, scan */ }
/// vigil_plugin::export_plugin!(Hello);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        unsafe extern "C" fn __vigil_scan(
            request: *const $crate::ScanRequest,
            sink: *const $crate::Sink,
        ) -> i32 {
            $crate::run_scan::<$plugin>(request, sink)
        }

        #[doc(hidden)]
        static __VIGIL_DESCRIPTOR: $crate::StaticDescriptor =
            $crate::StaticDescriptor($crate::Descriptor {
                abi_version: $crate::ABI_VERSION,
                struct_size: ::std::mem::size_of::<$crate::Descriptor>() as u32,
                name: <$plugin as $crate::Plugin>::NAME.as_ptr(),
                version: <$plugin as $crate::Plugin>::VERSION.as_ptr(),
                volatile_attributes: match <$plugin as $crate::Plugin>::VOLATILE_ATTRIBUTES {
                    Some(s) => s.as_ptr(),
                    None => ::std::ptr::null(),
                },
                scan: __vigil_scan,
            });

        /// The plugin's entry symbol (vigil ABI v1).
        #[no_mangle]
        pub extern "C" fn vigil_plugin_v1() -> *const $crate::Descriptor {
            &__VIGIL_DESCRIPTOR.0
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_as_the_untagged_form_did() {
        let v = |s: &str| serde_json::from_str::<Value>(s).ok();
        assert_eq!(v("true"), Some(Value::Bool(true)));
        assert_eq!(v("-3"), Some(Value::Int(-3)));
        assert_eq!(v("9223372036854775807"), Some(Value::Int(i64::MAX)));
        assert_eq!(v("9223372036854775808"), None);
        assert_eq!(v("\"a\\u00e9\""), Some(Value::Str("aé".into())));
        assert_eq!(v("1.5"), None);
        assert_eq!(v("null"), None);
        assert_eq!(v("[1]"), None);
    }

    #[test]
    fn item_json_is_pinned() {
        // The wire encoding is part of the ABI: pin it.
        let item = Item::new("/etc/hosts")
            .attr("mode", "0644")
            .attr("size", 12i64)
            .attr("setuid", false);
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(
            json,
            r#"{"key":"/etc/hosts","attributes":{"mode":"0644","setuid":false,"size":12}}"#
        );
        let back: Item = serde_json::from_str(&json).unwrap();
        assert_eq!(back, item);
    }

    #[test]
    fn unseen_json_is_pinned_and_covers_its_subtree() {
        let u = Unseen {
            key: "/etc/ssl".into(),
            reason: "permission denied".into(),
        };
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, r#"{"key":"/etc/ssl","reason":"permission denied"}"#);
        assert_eq!(serde_json::from_str::<Unseen>(&json).unwrap(), u);
        assert!(serde_json::from_str::<Unseen>(r#"{"key":"/x"}"#).is_err());
        assert!(u.covers("/etc/ssl"));
        assert!(u.covers("/etc/ssl/private/k.pem"));
        assert!(!u.covers("/etc/ssl.conf"));
        assert!(!u.covers("/etc/ss"));
        let all = Unseen {
            key: "/".into(),
            reason: String::new(),
        };
        assert!(all.covers("/") && all.covers("/etc") && all.covers("/etc/hosts"));
    }

    #[test]
    fn emitter_sends_unseen_records() {
        let mut got: Vec<(u32, String)> = Vec::new();
        let sink = Sink {
            ctx: &mut got as *mut _ as *mut c_void,
            emit: collect,
        };
        // SAFETY: the sink is valid for the emitter's whole life.
        let mut out = unsafe { Emitter::from_sink(&sink) };
        out.unseen("/etc/\"x\"", "cannot list directory: EIO")
            .unwrap();
        assert_eq!(got[0].0, RECORD_UNSEEN);
        let back: Unseen = serde_json::from_str(&got[0].1).unwrap();
        assert_eq!(back.key, "/etc/\"x\"");
        assert_eq!(back.reason, "cannot list directory: EIO");
    }

    #[test]
    fn values_decode_by_shape() {
        let v: Vec<Value> = serde_json::from_str(r#"[true, 7, "x"]"#).unwrap();
        assert_eq!(
            v,
            vec![Value::Bool(true), Value::Int(7), Value::Str("x".into())]
        );
    }

    struct Boom;
    impl Plugin for Boom {
        const NAME: &'static CStr = c"boom";
        const VERSION: &'static CStr = c"0";
        fn scan(_: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
            out.item(&Item::new("k")).map_err(|e| e.to_string())?;
            panic!("kaboom");
        }
    }

    unsafe extern "C" fn collect(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32 {
        let v = &mut *(ctx as *mut Vec<(u32, String)>);
        let s = String::from_utf8_lossy(std::slice::from_raw_parts(data, len)).into_owned();
        v.push((kind, s));
        0
    }

    #[test]
    fn panics_become_error_records() {
        let mut got: Vec<(u32, String)> = Vec::new();
        let sink = Sink {
            ctx: &mut got as *mut _ as *mut c_void,
            emit: collect,
        };
        let root = b"/";
        let req = ScanRequest {
            root: root.as_ptr(),
            root_len: root.len(),
            config: std::ptr::null(),
            config_len: 0,
        };
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let rc = unsafe { run_scan::<Boom>(&req, &sink) };
        std::panic::set_hook(prev);
        assert_eq!(rc, SCAN_PANICKED);
        assert_eq!(got[0].0, RECORD_ITEM);
        assert_eq!(got[1], (RECORD_ERROR, "plugin panicked: kaboom".to_owned()));
    }
}
