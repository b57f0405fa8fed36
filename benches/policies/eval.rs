//! Policy evaluation cost, without plugin runs: the shipped Debian baseline over the items a
//! typical Debian server reports (2,000 files under /etc, 600 packages, 60 accounts, 120
//! sysctl keys), repeated for many "nodes". Prints the time per node and per check per node.
//! Run: `cargo bench --bench policy_eval` (numbers go to the issue notes, not to tests).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use vigil::policy::{load_dir, Evaluator, Policy};
use vigil_plugin::Item;

const NODES: usize = 1_000;

fn items() -> Vec<(&'static str, Vec<Item>)> {
    let mut files: Vec<Item> = (0..2_000)
        .map(|i| {
            Item::new(format!("/etc/d{:02}/f{i:04}.conf", i % 40))
                .attr("type", "file")
                .attr("mode", if i % 3 == 0 { "0600" } else { "0644" })
                .attr("uid", 0i64)
                .attr("gid", 0i64)
                .attr("size", (i * 37 % 4096) as i64)
                .attr("blake3", format!("{:064x}", i * 7919))
        })
        .collect();
    let mut sshd = Item::new("/etc/ssh/sshd_config")
        .attr("type", "file")
        .attr("mode", "0644")
        .attr("uid", 0i64);
    sshd.content = Some(
        "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n"
            .repeat(4),
    );
    files.push(sshd);
    for (k, m) in [("/etc/passwd", "0644"), ("/etc/shadow", "0640")] {
        files.push(
            Item::new(k)
                .attr("type", "file")
                .attr("mode", m)
                .attr("uid", 0i64),
        );
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let mut packages: Vec<Item> = (0..600)
        .map(|i| Item::new(format!("pkg{i:03}")).attr("version", format!("1.{i}-1+deb12u1")))
        .collect();
    packages.push(Item::new("unattended-upgrades").attr("version", "2.9.1+nmu3"));
    packages.sort_by(|a, b| a.key.cmp(&b.key));
    let mut accounts: Vec<Item> = (0..60)
        .map(|i| {
            Item::new(format!("user:u{i:02}"))
                .attr("uid", 1000 + i as i64)
                .attr("password", "locked")
        })
        .collect();
    accounts.push(
        Item::new("user:root")
            .attr("uid", 0i64)
            .attr("password", "set"),
    );
    let sysctl: Vec<Item> = (0..120)
        .map(|i| Item::new(format!("net.k{i:03}")).attr("value", "1"))
        .chain([Item::new("net.ipv4.ip_forward").attr("value", "0")])
        .collect();
    vec![
        ("files", files),
        ("packages", packages),
        ("accounts", accounts),
        ("sysctl", sysctl),
    ]
}

fn main() {
    let plugins: BTreeSet<String> = ["files", "packages", "accounts", "sysctl", "services"]
        .into_iter()
        .map(String::from)
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policies: Vec<Policy> = load_dir(&dir, &plugins).expect("the shipped policies load");
    let checks: usize = policies.iter().map(|p| p.checks.len()).sum();
    let per_plugin = items();
    let item_count: usize = per_plugin.iter().map(|(_, v)| v.len()).sum();
    let start = Instant::now();
    let mut failed = 0;
    for _ in 0..NODES {
        for (plugin, items) in &per_plugin {
            let selected: Vec<_> = policies.iter().flat_map(|p| p.checks_for(plugin)).collect();
            let mut ev = Evaluator::new(&selected);
            for item in items {
                ev.observe(item);
            }
            failed += ev
                .finish()
                .iter()
                .filter(|r| r.outcome != vigil::policy::Outcome::Pass)
                .count();
        }
    }
    let took = start.elapsed();
    let per_node = took / NODES as u32;
    println!(
        "{checks} checks over {item_count} items per node, {NODES} nodes: {took:.2?} \
         ({per_node:.2?} per node, {:.1} µs per check per node); {failed} non-passing results",
        per_node.as_secs_f64() * 1e6 / checks as f64
    );
}
