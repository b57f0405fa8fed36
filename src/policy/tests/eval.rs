//! Every expectation kind and quantifier, with the evidence each result gives.

use vigil_plugin::Item;

use super::super::Outcome::{self, Error, Fail, Pass};
use super::{one, policy, run};

fn file(key: &str, mode: &str, uid: i64) -> Item {
    Item::new(key)
        .attr("type", "file")
        .attr("mode", mode)
        .attr("uid", uid)
}

fn with_content(mut item: Item, text: &str) -> Item {
    item.content = Some(text.to_owned());
    item
}

fn pkg(name: &str, version: &str) -> Item {
    Item::new(name).attr("version", version)
}

fn key_check(plugin: &str, key: &str, rest: &str) -> String {
    format!("[[check]]\nid = \"c\"\nplugin = \"{plugin}\"\nkey = \"{key}\"\n{rest}\n")
}

fn keys_check(plugin: &str, keys: &str, quantifier: &str, rest: &str) -> String {
    format!(
        "[[check]]\nid = \"c\"\nplugin = \"{plugin}\"\nkeys = \"{keys}\"\n\
         quantifier = \"{quantifier}\"\n{rest}\n"
    )
}

fn outcome(checks: &str, items: &[Item]) -> Outcome {
    one(checks, items).0
}

#[test]
fn present_and_absent_on_one_key() {
    let items = [pkg("openssl", "3.0.13-1")];
    let present = key_check("packages", "openssl", "present = true");
    assert_eq!(one(&present, &items), (Pass, "openssl: present".into()));
    assert_eq!(
        one(&present, &[]),
        (Fail, "openssl: not found, expected present".into())
    );
    let absent = key_check("packages", "telnetd", "absent = true");
    assert_eq!(one(&absent, &items), (Pass, "telnetd: absent".into()));
    let (o, ev) = one(&absent, &[pkg("telnetd", "0.17-44")]);
    assert_eq!(
        (o, ev.as_str()),
        (Fail, "telnetd: present, expected absent")
    );
}

#[test]
fn attribute_checks_on_a_missing_key_fail_as_not_found() {
    let c = key_check(
        "files",
        "/etc/shadow",
        "[check.attributes]\nuid = { equals = 0 }",
    );
    assert_eq!(one(&c, &[]), (Fail, "/etc/shadow: not found".into()));
}

#[test]
fn equals_compares_across_scalar_types() {
    let c = |v: &str| {
        key_check(
            "sysctl",
            "k",
            &format!("[check.attributes]\nvalue = {{ equals = {v} }}"),
        )
    };
    let s = [Item::new("k").attr("value", "0")];
    let i = [Item::new("k").attr("value", 0i64)];
    let b = [Item::new("k").attr("value", true)];
    assert_eq!(outcome(&c("0"), &s), Pass);
    assert_eq!(outcome(&c("\"0\""), &i), Pass);
    assert_eq!(outcome(&c("1"), &s), Fail);
    assert_eq!(outcome(&c("\"true\""), &b), Pass);
    assert_eq!(outcome(&c("false"), &b), Fail);
    let (o, ev) = one(&c("1"), &s);
    assert_eq!((o, ev.as_str()), (Fail, "k: value is 0, expected 1"));
}

#[test]
fn one_of_and_evidence_of_the_actual_value() {
    let c = key_check(
        "files",
        "/etc/shadow",
        "[check.attributes]\nmode = { one_of = [\"0640\", \"0600\"] }\nuid = { equals = 0 }",
    );
    assert_eq!(outcome(&c, &[file("/etc/shadow", "0640", 0)]), Pass);
    let (o, ev) = one(&c, &[file("/etc/shadow", "0644", 0)]);
    assert_eq!(o, Fail);
    assert_eq!(ev, "/etc/shadow: mode is 0644, expected one of 0640, 0600");
    let (o, ev) = one(&c, &[file("/etc/shadow", "0644", 1000)]);
    assert_eq!(o, Fail);
    assert_eq!(
        ev,
        "/etc/shadow: mode is 0644, expected one of 0640, 0600; uid is 1000, expected 0"
    );
}

#[test]
fn a_missing_attribute_fails() {
    let c = key_check("files", "/x", "[check.attributes]\nsize = { equals = 1 }");
    let (o, ev) = one(&c, &[Item::new("/x")]);
    assert_eq!(
        (o, ev.as_str()),
        (Fail, "/x: no attribute size, expected 1")
    );
}

#[test]
fn regex_matches_and_not_matches() {
    let m = key_check(
        "files",
        "/x",
        "[check.attributes]\nmode = { matches = '^0[0-7]{2}[0145]$' }",
    );
    assert_eq!(outcome(&m, &[file("/x", "0644", 0)]), Pass);
    assert_eq!(outcome(&m, &[file("/x", "0666", 0)]), Fail);
    let n = key_check(
        "files",
        "/x",
        "[check.attributes]\nmode = { not_matches = '^07' }",
    );
    assert_eq!(outcome(&n, &[file("/x", "0644", 0)]), Pass);
    let (o, ev) = one(&n, &[file("/x", "0755", 0)]);
    assert_eq!(
        (o, ev.as_str()),
        (Fail, "/x: mode is 0755, expected not to match ^07")
    );
    // Integers are matched through their decimal text.
    let i = key_check(
        "files",
        "/x",
        "[check.attributes]\nuid = { matches = '^10[0-9]{2}$' }",
    );
    assert_eq!(outcome(&i, &[file("/x", "0644", 1000)]), Pass);
}

#[test]
fn numeric_comparisons_in_both_spellings() {
    let item = [Item::new("k").attr("n", 10i64)];
    let text = [Item::new("k").attr("n", " 10 ")];
    for (cond, want) in [
        ("'<' = 11", Pass),
        ("lt = 10", Fail),
        ("'<=' = 10", Pass),
        ("le = 9", Fail),
        ("'>=' = 10", Pass),
        ("ge = 11", Fail),
        ("'>' = 9", Pass),
        ("gt = 10", Fail),
        ("ge = 5, le = 20", Pass),
        ("ge = 5, lt = 10", Fail),
    ] {
        let c = key_check(
            "sysctl",
            "k",
            &format!("[check.attributes]\nn = {{ {cond} }}"),
        );
        assert_eq!(outcome(&c, &item), want, "{cond} on 10");
        assert_eq!(outcome(&c, &text), want, "{cond} on \" 10 \"");
    }
    let c = key_check("sysctl", "k", "[check.attributes]\nn = { '>' = 1 }");
    let (o, ev) = one(&c, &[Item::new("k").attr("n", "many")]);
    assert_eq!(o, Fail);
    assert_eq!(ev, "k: n is many, not a number, expected > 1");
}

#[test]
fn package_versions_compare_with_dpkg_ordering() {
    let at_least = key_check(
        "packages",
        "openssl",
        "[check.attributes]\nversion = { version_at_least = \"3.0.13-1~deb12u1\" }",
    );
    assert_eq!(
        outcome(&at_least, &[pkg("openssl", "3.0.13-1~deb12u1")]),
        Pass
    );
    assert_eq!(outcome(&at_least, &[pkg("openssl", "3.0.13-1")]), Pass);
    assert_eq!(
        outcome(&at_least, &[pkg("openssl", "1:1.0")]),
        Pass,
        "epoch wins"
    );
    let (o, ev) = one(&at_least, &[pkg("openssl", "3.0.11-1~deb12u2")]);
    assert_eq!(o, Fail);
    assert_eq!(
        ev,
        "openssl: version 3.0.11-1~deb12u2 is below 3.0.13-1~deb12u1"
    );
    // "~" sorts before the end: a backport of the fixed version is still below it.
    assert_eq!(
        outcome(&at_least, &[pkg("openssl", "3.0.13-1~deb12u1~bpo1")]),
        Fail
    );
    // Not a version: the check cannot be evaluated.
    let (o, ev) = one(&at_least, &[pkg("openssl", "unknown")]);
    assert_eq!(o, Error);
    assert!(ev.contains("is not a Debian version"), "{ev}");

    let below = key_check(
        "packages",
        "bash",
        "[check.attributes]\nversion = { version_below = \"5.2\" }",
    );
    assert_eq!(outcome(&below, &[pkg("bash", "5.1-2")]), Pass);
    assert_eq!(outcome(&below, &[pkg("bash", "5.2~rc1")]), Pass);
    assert_eq!(outcome(&below, &[pkg("bash", "5.2")]), Fail);
    assert_eq!(outcome(&below, &[pkg("bash", "0:5.2-0")]), Fail);
}

#[test]
fn content_regexes() {
    let root_login = key_check(
        "files",
        "/etc/ssh/sshd_config",
        "content_matches = '(?m)^\\s*PermitRootLogin\\s+no\\s*$'\n\
         content_not_matches = '(?m)^\\s*PermitRootLogin\\s+yes'",
    );
    let item = |text: &str| [with_content(file("/etc/ssh/sshd_config", "0644", 0), text)];
    assert_eq!(
        outcome(&root_login, &item("Port 22\nPermitRootLogin no\n")),
        Pass
    );
    let (o, ev) = one(&root_login, &item("Port 22\n"));
    assert_eq!(o, Fail);
    assert!(ev.contains("content does not match"), "{ev}");
    let (o, ev) = one(
        &root_login,
        &item("PermitRootLogin no\n  PermitRootLogin yes\n"),
    );
    assert_eq!(o, Fail);
    assert!(ev.ends_with("at \"PermitRootLogin yes\""), "{ev}");
    // No captured content: the scan could not answer, which is an error, not a failure.
    let (o, ev) = one(&root_login, &[file("/etc/ssh/sshd_config", "0644", 0)]);
    assert_eq!(o, Error);
    assert!(ev.contains("files plugin's `content` globs"), "{ev}");
    let skipped = file("/etc/ssh/sshd_config", "0644", 0).attr("content_skipped", "too large");
    let (o, ev) = one(&root_login, &[skipped]);
    assert_eq!(
        (o, ev.contains("content not captured (too large)")),
        (Error, true)
    );
}

#[test]
fn quantifier_all() {
    let c = keys_check(
        "files",
        "/etc/*",
        "all",
        "[check.attributes]\nuid = { equals = 0 }",
    );
    let ok = [file("/etc/a", "0644", 0), file("/etc/b", "0644", 0)];
    let (o, ev) = one(&c, &ok);
    assert_eq!(o, Pass);
    assert_eq!(ev, "keys /etc/* (all): all 2 items satisfy uid = 0");
    let bad = [
        file("/etc/a", "0644", 0),
        file("/etc/b", "0644", 5),
        file("/etc/c", "0644", 6),
    ];
    let (o, ev) = one(&c, &bad);
    assert_eq!(o, Fail);
    assert_eq!(
        ev,
        "keys /etc/* (all): 2 of 3 items fail: /etc/b (uid is 5, expected 0), \
         /etc/c (uid is 6, expected 0)"
    );
    // Nothing selected: vacuously true, and the evidence says so.
    let (o, ev) = one(
        &c,
        &[file("/usr/a", "0644", 7), file("/etc/sub/x", "0644", 7)],
    );
    assert_eq!(
        (o, ev.as_str()),
        (Pass, "keys /etc/* (all): 0 items selected")
    );
}

#[test]
fn quantifier_any() {
    let c = keys_check(
        "files",
        "/etc/*.conf",
        "any",
        "[check.attributes]\nmode = { equals = \"0600\" }",
    );
    let items = [
        file("/etc/a.conf", "0644", 0),
        file("/etc/b.conf", "0600", 0),
    ];
    let (o, ev) = one(&c, &items);
    assert_eq!(o, Pass);
    assert_eq!(
        ev,
        "keys /etc/*.conf (any): 1 of 2 items satisfy mode = 0600, e.g. /etc/b.conf"
    );
    let (o, ev) = one(&c, &items[..1]);
    assert_eq!(o, Fail);
    assert!(
        ev.starts_with("keys /etc/*.conf (any): none of 1 items satisfies"),
        "{ev}"
    );
    let (o, ev) = one(&c, &[]);
    assert_eq!(o, Fail);
    assert!(ev.contains("0 items selected"), "{ev}");
}

#[test]
fn quantifier_none_with_exclusions() {
    let c = "[[check]]\nid = \"c\"\nplugin = \"accounts\"\nkeys = \"user:*\"\n\
             exclude_keys = [\"user:root\"]\nquantifier = \"none\"\n\
             [check.attributes]\nuid = { equals = 0 }\n";
    let user = |name: &str, uid: i64| Item::new(format!("user:{name}")).attr("uid", uid);
    let fine = [
        user("root", 0),
        user("alice", 1000),
        Item::new("group:root").attr("uid", 0i64),
    ];
    let (o, ev) = one(c, &fine);
    assert_eq!(o, Pass);
    assert_eq!(
        ev,
        "keys user:* except user:root (none): none of 1 items match uid = 0"
    );
    let (o, ev) = one(c, &[user("root", 0), user("toor", 0), user("bob", 1001)]);
    assert_eq!(o, Fail);
    assert_eq!(
        ev,
        "keys user:* except user:root (none): 1 of 2 items match uid = 0: user:toor (uid is 0)"
    );
}

#[test]
fn many_failures_are_quoted_up_to_five() {
    let c = keys_check(
        "files",
        "/etc/**",
        "none",
        "[check.attributes]\nmode = { equals = \"0777\" }",
    );
    let items: Vec<Item> = (0..12)
        .map(|i| file(&format!("/etc/f{i:02}"), "0777", 0))
        .collect();
    let (o, ev) = one(&c, &items);
    assert_eq!(o, Fail);
    assert!(ev.contains("12 of 12 items match"), "{ev}");
    assert!(
        ev.contains("/etc/f04 (mode is 0777)") && !ev.contains("/etc/f05"),
        "{ev}"
    );
    assert!(ev.ends_with("and 7 more"), "{ev}");
}

#[test]
fn present_and_absent_with_a_glob() {
    let present =
        "[[check]]\nid = \"c\"\nplugin = \"packages\"\nkeys = \"linux-image-*\"\npresent = true\n";
    let items = [
        pkg("linux-image-6.1.0-18-amd64", "6.1.76-1"),
        pkg("bash", "5.2"),
    ];
    let (o, ev) = one(present, &items);
    assert_eq!(o, Pass);
    assert_eq!(
        ev,
        "keys linux-image-*: 1 items match, e.g. linux-image-6.1.0-18-amd64"
    );
    let (o, ev) = one(present, &items[1..]);
    assert_eq!(
        (o, ev.as_str()),
        (Fail, "keys linux-image-*: no item matches, expected some")
    );
    let absent = present.replace("present", "absent");
    assert_eq!(
        one(&absent, &items[1..]),
        (Pass, "keys linux-image-*: no item matches".into())
    );
    let (o, ev) = one(&absent, &items);
    assert_eq!(o, Fail);
    assert_eq!(
        ev,
        "keys linux-image-*: 1 items match, expected none: linux-image-6.1.0-18-amd64"
    );
}

#[test]
fn errors_do_not_hide_definite_failures() {
    let c = keys_check(
        "packages",
        "*",
        "all",
        "[check.attributes]\nversion = { version_at_least = \"2\" }",
    );
    // One item cannot be compared, one fails: the failure decides.
    let (o, _) = one(&c, &[pkg("a", "garbage"), pkg("b", "1.0")]);
    assert_eq!(o, Fail);
    // Only errors beside passes: the check could not be evaluated.
    let (o, ev) = one(&c, &[pkg("a", "garbage"), pkg("b", "3.0")]);
    assert_eq!(o, Error);
    assert!(
        ev.contains("1 of 2 items cannot be checked, first a:"),
        "{ev}"
    );
}

#[test]
fn checks_of_several_policies_and_plugins_fold_in_one_pass() {
    let p = policy(
        "[[check]]\nid = \"a\"\nplugin = \"files\"\nkey = \"/etc/passwd\"\npresent = true\n\
         [[check]]\nid = \"b\"\nplugin = \"files\"\nkeys = \"/etc/*\"\nquantifier = \"none\"\n\
         [check.attributes]\nmode = { equals = \"0777\" }\n\
         [[check]]\nid = \"c\"\nplugin = \"files\"\nkey = \"/etc/passwd\"\n\
         [check.attributes]\nmode = { equals = \"0644\" }\n",
    );
    let items = [
        file("/etc/passwd", "0644", 0),
        file("/etc/group", "0777", 0),
    ];
    let results = run(&p, &items);
    let got: Vec<(&str, Outcome)> = results
        .iter()
        .map(|r| (r.check.as_str(), r.outcome))
        .collect();
    assert_eq!(got, [("a", Pass), ("b", Fail), ("c", Pass)]);
    assert!(results.iter().all(|r| r.policy == "p"));
}
