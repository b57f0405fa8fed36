//! Digests this crate's source into `WIRE_HASH`: a daemon and a worker built from different
//! frame definitions see different hashes in the worker's hello and refuse each other.

fn main() {
    let src = std::fs::read("src/lib.rs").expect("src/lib.rs");
    let hash = blake3::hash(&src).to_hex();
    println!("cargo:rustc-env=VIGIL_WIRE_HASH={}", &hash[..16]);
    println!("cargo:rerun-if-changed=src/lib.rs");
}
