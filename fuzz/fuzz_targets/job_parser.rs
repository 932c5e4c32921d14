//! Job files: any text must give a job or a configuration error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = veil_cli::parse::job(text);
    }
});
