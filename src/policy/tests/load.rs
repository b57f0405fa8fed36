use std::collections::BTreeSet;
use std::path::Path;

use super::super::{load_dir, plugins_needed, Quantifier, Selector};
use super::{load, plugins, policy};
use crate::config::Scope;

const SPEC_SKETCH: &str = r#"
name = "debian-baseline"
description = "Baseline for Debian servers"
scope = "all"                                   # optional default scope

[[check]]
id = "ssh-no-root-login"
description = "Root login over SSH is disabled"
plugin = "files"
key = "/etc/ssh/sshd_config"                    # exact key ...
content_matches = '(?m)^\s*PermitRootLogin\s+no\s*$'

[[check]]
id = "no-telnetd"
plugin = "packages"
key = "telnetd"
absent = true

[[check]]
id = "shadow-mode"
plugin = "files"
key = "/etc/shadow"
[check.attributes]                              # every named attribute must hold
mode = { one_of = ["0640", "0600"] }
uid = { equals = 0 }

[[check]]
id = "openssl-patched"
plugin = "packages"
key = "openssl"
[check.attributes]
version = { version_at_least = "3.0.13-1~deb12u1" }

[[check]]
id = "etc-not-world-writable"
plugin = "files"
keys = "/etc/**"                                # ... or a glob with a quantifier
quantifier = "none"                             # "all" (default) | "any" | "none"
[check.attributes]
mode = { matches = '^0?[0-7]{2}[2367]$' }       # none may match: no world-writable file
"#;

#[test]
fn the_spec_sketch_parses() {
    let p = load(SPEC_SKETCH).unwrap();
    assert_eq!(p.name, "debian-baseline");
    assert_eq!(p.scope, Some(Scope::All));
    let ids: Vec<&str> = p.checks.iter().map(|c| c.id.as_str()).collect();
    let want = [
        "ssh-no-root-login",
        "no-telnetd",
        "shadow-mode",
        "openssl-patched",
    ];
    assert_eq!(ids[..4], want);
    assert!(p.checks.iter().all(|c| c.policy == "debian-baseline"));
    assert_eq!(p.checks[1].expectation(), "absent");
    assert_eq!(
        p.checks[2].expectation(),
        "mode one of 0640, 0600 and uid = 0"
    );
    assert_eq!(p.checks[3].expectation(), "version >= 3.0.13-1~deb12u1");
    let Selector::Keys(g) = &p.checks[4].selector else {
        panic!("keys expected")
    };
    assert_eq!(
        (g.pattern.as_str(), g.quantifier),
        ("/etc/**", Quantifier::None)
    );
    assert!(g.selects("/etc/a/b") && !g.selects("/etcx") && !g.selects("/usr/etc/a"));
    let files: Vec<&str> = p.checks_for("files").map(|c| c.id.as_str()).collect();
    assert_eq!(
        files,
        ["ssh-no-root-login", "shadow-mode", "etc-not-world-writable"]
    );
    let needed: Vec<String> = plugins_needed(&[p]).into_iter().collect();
    assert_eq!(needed, ["files", "packages"]);
}

#[test]
fn single_star_stays_within_a_path_component() {
    let p = policy(
        "[[check]]\nid = \"a\"\nplugin = \"files\"\nkeys = \"/etc/*.conf\"\npresent = true\n",
    );
    let Selector::Keys(g) = &p.checks[0].selector else {
        panic!()
    };
    assert!(g.selects("/etc/a.conf"));
    assert!(!g.selects("/etc/sub/a.conf"));
}

#[test]
fn both_spellings_of_comparisons_are_accepted() {
    let p = policy(
        "[[check]]\nid = \"a\"\nplugin = \"accounts\"\nkey = \"user:x\"\n\
         [check.attributes]\nuid = { \">=\" = 1000, lt = 60000 }\ngid = { le = 5, \">\" = 1 }\n",
    );
    assert_eq!(
        p.checks[0].expectation(),
        "uid < 60000 and uid >= 1000 and gid <= 5 and gid > 1"
    );
}

#[test]
fn scope_decides_where_a_policy_applies() {
    let mut p = policy("");
    let groups = vec!["web".to_owned()];
    assert!(p.applies_to("n1", &groups));
    p.scope = Some("group:web".parse().unwrap());
    assert!(p.applies_to("n1", &groups) && !p.applies_to("n1", &[]));
    p.scope = Some("node:n2".parse().unwrap());
    assert!(!p.applies_to("n1", &groups) && p.applies_to("n2", &[]));
}

/// Parses `checks` after a two-line header and returns (line, column, message) per error.
fn errors(checks: &str) -> Vec<(usize, usize, String)> {
    let text = format!("name = \"p\"\ndescription = \"d\"\n{checks}");
    let errs = load(&text).expect_err("should be rejected").0;
    errs.into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

/// Asserts exactly one error, on `line`, whose message contains `needle`.
#[track_caller]
fn one_error(checks: &str, line: usize, needle: &str) {
    let errs = errors(checks);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, line, "{errs:?}");
    assert!(
        errs[0].2.contains(needle),
        "{:?} lacks {needle:?}",
        errs[0].2
    );
}

const HEAD: &str = "[[check]]\nid = \"c\"\n"; // lines 3-4

#[test]
fn syntax_error() {
    let errs = load("name = \"p\"\ndescription = \n").unwrap_err();
    assert_eq!(errs.0[0].line, 2);
    assert!(errs.to_string().starts_with("p.toml:2:"), "{errs}");
    assert!(errs.0[0].message.starts_with("TOML syntax"));
}

#[test]
fn header_errors() {
    let errs = load("name = \"p\"\ncolour = 1\nscope = \"everywhere\"\n")
        .unwrap_err()
        .0;
    let got: Vec<_> = errs.iter().map(|e| (e.line, e.message.as_str())).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, 1);
    assert!(got[0].1.contains("missing field `description`"), "{got:?}");
    assert_eq!(got[1].0, 2);
    assert!(got[1].1.contains("unknown key `colour`"));
    assert_eq!(got[2].0, 3);
    assert!(got[2].1.contains("invalid scope"));
    let errs = load("name = \"two words\"\ndescription = \"d\"\n")
        .unwrap_err()
        .0;
    assert_eq!((errs[0].line, errs[0].column), (1, 8));
}

#[test]
fn unknown_fields_are_refused() {
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkey = \"/a\"\npresnt = true\n"),
        7,
        "unknown field `presnt`",
    );
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkey = \"/a\"\n[check.attributes]\nmode = {{ equal = \"0644\" }}\n"),
        8,
        "unknown field `equal`",
    );
}

#[test]
fn missing_fields() {
    one_error(
        "[[check]]\nplugin = \"files\"\nkey = \"/a\"\npresent = true\n",
        3,
        "missing field `id`",
    );
    one_error(
        &format!("{HEAD}key = \"/a\"\npresent = true\n"),
        3,
        "missing field `plugin`",
    );
}

#[test]
fn unknown_plugin() {
    one_error(
        &format!("{HEAD}plugin = \"filez\"\nkey = \"/a\"\npresent = true\n"),
        5,
        "unknown plugin `filez`; configured plugins: accounts, files, packages, services, sysctl",
    );
}

#[test]
fn bad_regexes_and_globs() {
    let errs = errors(&format!(
        "{HEAD}plugin = \"files\"\nkey = \"/a\"\ncontent_matches = '(oops'\n\
         [check.attributes]\nmode = {{ matches = '[z-a]' }}\n"
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1), (7, 19));
    assert_eq!(errs[0].2, "invalid regex \"(oops\": unclosed group");
    assert_eq!(errs[1].0, 9);
    assert!(
        errs[1].2.contains("invalid character class range"),
        "{}",
        errs[1].2
    );
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkeys = \"/etc/[a\"\npresent = true\n"),
        6,
        "invalid glob",
    );
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkeys = \"/etc/**\"\nexclude_keys = [\"/etc/{{a\"]\npresent = true\n"),
        7,
        "invalid glob",
    );
}

#[test]
fn duplicate_check_ids() {
    let c = "plugin = \"files\"\nkey = \"/a\"\npresent = true\n";
    one_error(
        &format!("{HEAD}{c}{HEAD}{c}"),
        9,
        "duplicate check id `c` (first used on line 4)",
    );
}

#[test]
fn selector_errors() {
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkey = \"/a\"\nkeys = \"/b\"\npresent = true\n"),
        7,
        "not both",
    );
    one_error(
        &format!("{HEAD}plugin = \"files\"\npresent = true\n"),
        3,
        "missing item selector",
    );
    one_error(
        &format!("{HEAD}plugin = \"files\"\nkey = \"/a\"\nquantifier = \"any\"\npresent = true\n"),
        7,
        "`quantifier` applies to `keys` only",
    );
    one_error(
        &format!(
            "{HEAD}plugin = \"files\"\nkey = \"/a\"\nexclude_keys = [\"/b\"]\npresent = true\n"
        ),
        7,
        "`exclude_keys` applies to `keys` only",
    );
    one_error(
        &format!(
            "{HEAD}plugin = \"files\"\nkeys = \"/a\"\nquantifier = \"some\"\npresent = true\n"
        ),
        7,
        "unknown variant `some`",
    );
    one_error(
        &format!(
            "{HEAD}plugin = \"files\"\nkeys = \"/a/*\"\nquantifier = \"any\"\nabsent = true\n"
        ),
        7,
        "does not apply to `present`/`absent`",
    );
}

#[test]
fn expectation_errors() {
    let base = format!("{HEAD}plugin = \"files\"\nkey = \"/a\"\n"); // expectation on line 7
    one_error(&base, 3, "check has no expectation");
    one_error(
        &format!("{base}present = false\n"),
        7,
        "write `absent = true`",
    );
    one_error(
        &format!("{base}present = true\nabsent = true\n"),
        8,
        "not both",
    );
    one_error(
        &format!("{base}absent = true\ncontent_matches = 'x'\n"),
        7,
        "stand alone",
    );
    one_error(
        &format!("{base}[check.attributes]\n"),
        7,
        "[check.attributes] is empty",
    );
    one_error(
        &format!("{base}[check.attributes]\nmode = {{}}\n"),
        8,
        "no condition for attribute `mode`",
    );
    one_error(
        &format!("{base}[check.attributes]\nmode = {{ one_of = [] }}\n"),
        8,
        "`one_of` is empty",
    );
    one_error(
        &format!("{base}[check.attributes]\nmode = \"0644\"\n"),
        8,
        "a table of conditions",
    );
    one_error(
        &format!("{base}[check.attributes]\nversion = {{ version_below = \"next\" }}\n"),
        8,
        "\"next\" is not a Debian version",
    );
    one_error(
        &format!("{base}[check.attributes]\nuid = {{ lt = \"5\" }}\n"),
        8,
        "invalid type",
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let errs = errors(
        "[[check]]\nid = \"a\"\nplugin = \"nope\"\nkey = \"/a\"\npresent = true\n\
         [[check]]\nid = \"b\"\nplugin = \"files\"\nkey = \"/b\"\n\
         [[check]]\nid = \"c\"\nplugin = \"files\"\nkeys = \"/c/*\"\ncontent_matches = '('\n",
    );
    let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
    assert_eq!(lines, [5, 8, 16], "{errs:?}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn load_dir_reads_toml_files_sorted_by_policy_name() {
    let dir = tempdir();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("1.toml", "name = \"zeta\"\ndescription = \"z\"\n");
    write("2.toml", "name = \"alpha\"\ndescription = \"a\"\n");
    write(".#3.toml", "garbage");
    write("notes.txt", "garbage");
    std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
    let got = load_dir(dir.path(), &plugins()).unwrap();
    let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(got[0].file, dir.path().join("2.toml"));
}

#[test]
fn load_dir_of_a_missing_directory_is_empty() {
    let dir = tempdir();
    let got = load_dir(&dir.path().join("absent"), &BTreeSet::new()).unwrap();
    assert!(got.is_empty());
}

#[test]
fn load_dir_reports_all_files_and_duplicate_names() {
    let dir = tempdir();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("a.toml", "name = \"same\"\ndescription = \"1\"\n");
    write("b.toml", "description = \"2\"\nname = \"same\"\n");
    write("c.toml", "name = \"c\"\ndescription = \"3\"\nbogus = 1\n");
    let errs = load_dir(dir.path(), &plugins()).unwrap_err();
    let shown = errs.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    let (b, c) = (dir.path().join("b.toml"), dir.path().join("c.toml"));
    assert!(
        lines[0].starts_with(&format!("{}:3:1: unknown key `bogus`", c.display())),
        "{shown}"
    );
    let dup = format!(
        "{}:2:8: policy name `same` is already used by ",
        b.display()
    );
    assert!(lines[1].starts_with(&dup), "{shown}");
}

#[test]
fn shipped_example_policies_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let got = load_dir(&dir, &plugins()).unwrap_or_else(|e| panic!("{e}"));
    assert!(got.iter().any(|p| p.name == "debian-baseline"));
}
