//! Purposes registries: any text must give a registry or a configuration error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = veil_cli::parse::purposes(text);
    }
});
