//! Issue 16: a plugin library under a directory others may write to is refused, and the
//! scan's log row says so and why (whoever can write there can swap the subtree between the
//! check and the load).

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::common::{Daemon, TestDir};

#[test]
fn a_library_under_a_writable_directory_is_refused_in_the_log() {
    let dir = TestDir::new();
    let open = dir.path().join("open");
    let plugins = open.join("sub/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for d in [open.join("sub"), plugins.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let lib = plugins.join("libvigil_test_plugins.so");
    std::fs::copy(dir.plugin_dir().join("libvigil_test_plugins.so"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = dir.node_root("n1");
    let d = Daemon::start(
        &dir,
        &format!(
            "[[node]]\nname = \"n1\"\nroot = \"{}\"\n\n\
             [[plugin]]\nname = \"fx\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"ok\"\n",
            root.display(),
            lib.display()
        ),
    );
    let rows = d.queue_and_wait(json!({"kind": "scan"}));
    assert_eq!(rows.len(), 1);
    let row = rows[0].to_string();
    assert_eq!(rows[0]["status"], "Failed", "{row}");
    assert!(row.contains("refused to load the plugin"), "{row}");
    assert!(row.contains("directory above the plugin library"), "{row}");
    assert!(row.contains(&open.display().to_string()), "{row}");
    assert!(row.contains("chmod go-w"), "{row}");
}
