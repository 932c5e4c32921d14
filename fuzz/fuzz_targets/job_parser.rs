//! Job files: any text must give a job or a configuration error, never a panic.
//! The checks are in `fuzz/src/targets.rs`, shared with the stable test that runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| veil_fuzz::job_parser(data));
