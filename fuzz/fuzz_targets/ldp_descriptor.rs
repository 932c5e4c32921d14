//! LDP protocol descriptors: any TOML text must give a protocol or an error.
//! The checks are in `fuzz/src/targets.rs`, shared with the stable test that runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| veil_fuzz::ldp_descriptor(data));
