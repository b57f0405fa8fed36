#![no_main]
//! See `vigil::fuzzing::api_body`: the same function the stable corpus replay calls.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vigil::fuzzing::api_body(data);
});
