use super::*;
use std::os::unix::fs::symlink;
use vigil_plugin::Value;

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23456 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:D5A4 01 00000000:00000000 02:0009C4AE 00000000     0        0 34567 4 0000000000000000 20 4 1 10 -1
   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12344 1 0000000000000000 100 0 0 10 0
   4: garbage
";

const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 45678 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 56789 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 67890 1 0000000000000000 100 0 0 10 0
";

const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 11111 2 0000000000000000 0
  456: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 22222 2 0000000000000000 0
  789: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 33333 2 0000000000000000 0
  790: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 44444 2 0000000000000000 0
";

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a Value> {
    item.attributes.get(name)
}

#[cfg(target_endian = "little")]
#[test]
fn addresses_decode_per_word_host_order() {
    assert_eq!(
        parse_address("0100007F", false),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        parse_address("00000000", false),
        Some("0.0.0.0".parse().unwrap())
    );
    assert_eq!(
        parse_address("00000000000000000000000001000000", true),
        Some("::1".parse().unwrap())
    );
    assert_eq!(
        parse_address("B80D0120000000000000000001000000", true),
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        parse_address("0000000000000000FFFF00000100007F", true),
        Some("::ffff:127.0.0.1".parse().unwrap())
    );
    assert_eq!(parse_address("0100007", false), None);
    assert_eq!(parse_address("0100007G", false), None);
    assert_eq!(parse_address("0100007F", true), None);
}

#[cfg(target_endian = "little")]
#[test]
fn tcp_tables_keep_only_listeners() {
    let (sockets, malformed) = parse_table(TCP, Proto::Tcp);
    assert_eq!(malformed, 1);
    let keys: Vec<String> = sockets.iter().map(Socket::key).collect();
    assert_eq!(
        keys,
        ["tcp:0.0.0.0:22", "tcp:127.0.0.1:631", "tcp:0.0.0.0:22"]
    );
    assert_eq!(sockets[0].inode, 12345);

    let (sockets, malformed) = parse_table(TCP6, Proto::Tcp6);
    assert_eq!(malformed, 0);
    let keys: Vec<String> = sockets.iter().map(Socket::key).collect();
    assert_eq!(
        keys,
        ["tcp6:[::]:22", "tcp6:[::1]:631", "tcp6:[2001:db8::1]:8080"]
    );
}

#[cfg(target_endian = "little")]
#[test]
fn udp_tables_keep_bound_unconnected_sockets() {
    let (sockets, malformed) = parse_table(UDP, Proto::Udp);
    assert_eq!(malformed, 0);
    let keys: Vec<String> = sockets.iter().map(Socket::key).collect();
    assert_eq!(keys, ["udp:127.0.0.53:53", "udp:0.0.0.0:68"]);
}

fn fake_proc() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    fs::create_dir(proc.join("net")).unwrap();
    fs::write(proc.join("net/tcp"), TCP).unwrap();
    fs::write(proc.join("net/tcp6"), TCP6).unwrap();
    fs::write(proc.join("net/udp"), UDP).unwrap();
    // No udp6: IPv6 UDP table missing, as with ipv6.disable=1.
    for (pid, comm, fds) in [
        (
            100,
            "sshd",
            &[("3", "socket:[12344]"), ("4", "socket:[45678]")][..],
        ),
        (250, "sshd", &[("3", "socket:[12344]")][..]),
        (
            31,
            "cupsd",
            &[
                ("0", "/dev/null"),
                ("7", "socket:[23456]"),
                ("8", "pipe:[99]"),
            ][..],
        ),
    ] {
        let fd_dir = proc.join(format!("{pid}/fd"));
        fs::create_dir_all(&fd_dir).unwrap();
        fs::write(proc.join(format!("{pid}/comm")), format!("{comm}\n")).unwrap();
        for (fd, target) in fds {
            symlink(target, fd_dir.join(fd)).unwrap();
        }
    }
    fs::create_dir(proc.join("self")).unwrap();
    dir
}

#[cfg(target_endian = "little")]
#[test]
fn scan_merges_reuseport_and_attributes_owners() {
    let proc = fake_proc();
    let scan = scan_proc(proc.path(), &Config::default());
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tcp6:[2001:db8::1]:8080",
            "tcp6:[::1]:631",
            "tcp6:[::]:22",
            "tcp:0.0.0.0:22",
            "tcp:127.0.0.1:631",
            "udp:0.0.0.0:68",
            "udp:127.0.0.53:53",
        ]
    );
    let ssh = &scan.items[3];
    assert_eq!(
        attr(ssh, "inode"),
        Some(&Value::Int(12344)),
        "lowest inode of the REUSEPORT pair"
    );
    assert_eq!(
        attr(ssh, "pid"),
        Some(&Value::Int(100)),
        "lowest owning pid"
    );
    assert_eq!(attr(ssh, "process"), Some(&Value::Str("sshd".into())));
    assert_eq!(attr(ssh, "protocol"), Some(&Value::Str("tcp".into())));
    assert_eq!(attr(ssh, "address"), Some(&Value::Str("0.0.0.0".into())));
    assert_eq!(attr(ssh, "port"), Some(&Value::Int(22)));
    assert_eq!(
        attr(&scan.items[4], "process"),
        Some(&Value::Str("cupsd".into()))
    );
    assert_eq!(attr(&scan.items[5], "pid"), None, "no owner found");
    assert_eq!(scan.notes.len(), 2, "{:?}", scan.notes);
    assert!(
        scan.notes.iter().any(|n| n.contains("unparsable lines")),
        "{:?}",
        scan.notes
    );
    assert!(
        scan.notes.iter().any(|n| n.contains("udp6")),
        "{:?}",
        scan.notes
    );

    let quiet = scan_proc(proc.path(), &Config { processes: false });
    assert!(quiet.items.iter().all(|i| attr(i, "pid").is_none()));
}

#[test]
fn host_scan_is_sorted_and_unique() {
    let scan = scan_proc(Path::new("/proc"), &Config::default());
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert!(
        keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
        "{keys:?}"
    );
}

#[test]
fn config_refuses_unknown_fields() {
    assert!(serde_json::from_str::<Config>("{}").unwrap().processes);
    assert!(serde_json::from_str::<Config>(r#"{"proc": "/x"}"#).is_err());
}

#[test]
fn volatile_attributes_are_pid_and_inode() {
    assert_eq!(<Ports as Plugin>::VOLATILE_ATTRIBUTES, Some(c"pid,inode"));
}

unsafe extern "C" fn collect(
    ctx: *mut std::ffi::c_void,
    kind: u32,
    data: *const u8,
    len: usize,
) -> i32 {
    let records = &mut *(ctx as *mut Vec<(u32, String)>);
    let bytes = std::slice::from_raw_parts(data, len);
    records.push((kind, String::from_utf8_lossy(bytes).into_owned()));
    0
}

/// Runs the exported entry point as the host would, returning (rc, records).
fn run(root: &str, config: &str) -> (i32, Vec<(u32, String)>) {
    let mut records: Vec<(u32, String)> = Vec::new();
    let sink = vigil_plugin::Sink {
        ctx: &mut records as *mut _ as *mut std::ffi::c_void,
        emit: collect,
    };
    let request = vigil_plugin::ScanRequest {
        root: root.as_ptr(),
        root_len: root.len(),
        config: config.as_ptr(),
        config_len: config.len(),
    };
    // SAFETY: request and sink outlive the call, as the ABI requires.
    let rc = unsafe { vigil_plugin::run_scan::<Ports>(&request, &sink) };
    (rc, records)
}

#[test]
fn non_host_root_is_an_empty_scan_with_a_note() {
    let (rc, records) = run("/srv/images/web1", "{}");
    assert_eq!(rc, vigil_plugin::SCAN_OK);
    assert_eq!(
        records,
        [(
            vigil_plugin::RECORD_NOTE,
            "ports: live data only, root is not /".to_owned()
        )]
    );
    let (rc, records) = run("/", r#"{"bogus": 1}"#);
    assert_eq!(rc, vigil_plugin::SCAN_FAILED);
    assert_eq!(records[0].0, vigil_plugin::RECORD_ERROR);
    assert!(records[0].1.contains("bogus"), "{records:?}");
}
