//! LDP reports: any bytes must decode to a report or an error; the server must check and count (or refuse) any bytes.
//! The checks are in `fuzz/src/targets.rs`, shared with the stable test that runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| veil_fuzz::ldp_report(data));
