//! Purposes registries: any text must give a registry or a configuration error.
//! The checks are in `fuzz/src/targets.rs`, shared with the stable test that runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| veil_fuzz::purposes(data));
