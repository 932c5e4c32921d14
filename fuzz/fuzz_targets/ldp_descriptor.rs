//! LDP protocol descriptors: any TOML text must give a protocol or an error. A protocol
//! that loads must describe itself again identically and randomize one value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_ldp::{Protocol, ProtocolDescriptor};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(descriptor) = toml::from_str::<ProtocolDescriptor>(text) else {
        return;
    };
    let Ok(protocol) = Protocol::from_descriptor(&descriptor) else {
        return;
    };
    let again = Protocol::from_descriptor(&protocol.descriptor())
        .expect("a loaded protocol's own descriptor loads");
    assert_eq!(again.id(), protocol.id());
});
