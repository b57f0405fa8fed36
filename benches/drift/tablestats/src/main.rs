//! `vigil-tablestats DB [DB2]`: rows, stored and allocated bytes of each table of a vigil
//! database (allocated = stored + index + fragmentation, redb's `TableStats`); with two
//! databases (the same state before and after a night), what each table grew by.

use std::collections::BTreeMap;
use std::process::ExitCode;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};

/// Table name → (rows, stored bytes, allocated bytes).
type Sizes = BTreeMap<String, (u64, u64, u64)>;

fn sizes(path: &str) -> Result<Sizes, String> {
    let db = Database::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    let mut out = Sizes::new();
    for handle in tx.list_tables().map_err(|e| e.to_string())? {
        let name = handle.name().to_owned();
        let table = tx.open_untyped_table(handle).map_err(|e| e.to_string())?;
        let s = table.stats().map_err(|e| e.to_string())?;
        let rows = table.len().map_err(|e| e.to_string())?;
        let allocated = s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
        out.insert(name, (rows, s.stored_bytes(), allocated));
    }
    Ok(out)
}

fn kib(b: i128) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (before, after) = match args.as_slice() {
        [one] => (Sizes::new(), sizes(one)),
        [a, b] => match sizes(a) {
            Ok(a) => (a, sizes(b)),
            Err(e) => return fail(&e),
        },
        _ => return fail("usage: vigil-tablestats DB [DB_AFTER]"),
    };
    let after = match after {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let mut rows: Vec<(&String, i128, i128, i128)> = after
        .iter()
        .map(|(name, &(r, s, a))| {
            let (r0, s0, a0) = before.get(name).copied().unwrap_or_default();
            (
                name,
                i128::from(r) - i128::from(r0),
                i128::from(s) - i128::from(s0),
                i128::from(a) - i128::from(a0),
            )
        })
        .filter(|(_, r, s, a)| *r != 0 || *s != 0 || *a != 0)
        .collect();
    rows.sort_by_key(|(_, _, _, a)| -a);
    let (mut stored, mut allocated) = (0, 0);
    for (name, r, s, a) in &rows {
        println!(
            "{name:32} rows {r:>+9}  stored {:>12}  allocated {:>12}",
            kib(*s),
            kib(*a)
        );
        stored += s;
        allocated += a;
    }
    println!(
        "{:32} {:14}  stored {:>12}  allocated {:>12}",
        "total",
        "",
        kib(stored),
        kib(allocated)
    );
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("vigil-tablestats: {message}");
    ExitCode::FAILURE
}
