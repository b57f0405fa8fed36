#![no_main]
//! See `vigil::fuzzing::worker_hello`: the same function the stable corpus replay calls.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vigil::fuzzing::worker_hello(data);
});
