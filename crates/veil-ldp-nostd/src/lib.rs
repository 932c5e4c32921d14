//! A build check, not a library: `veil-ldp` without default features must build in a
//! `#![no_std]` crate, so that mobile, embedded and WebAssembly clients can embed it.
//!
//! With the `check` feature this crate defines the panic handler itself; if anything in
//! its dependency graph linked `std`, the build would fail with a duplicate `panic_impl`
//! lang item. `.ci/run` runs `cargo build -p veil-ldp-nostd --features check`; the
//! machine has only the host target installed, so this is how the CI proves the client
//! part needs nothing but `core` and `alloc`.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

use rand_core::{CryptoRng, Rng};
use veil_ldp::{LdpError, Protocol, ProtocolConfig};

/// Builds a protocol and randomizes one value: the client's whole job, in `no_std`.
///
/// # Errors
/// Whatever [`Protocol::new`] or [`Protocol::randomize_index`] returns.
pub fn client_report<R: Rng + CryptoRng + ?Sized>(
    config: ProtocolConfig,
    index: u32,
    rng: &mut R,
) -> Result<Vec<u8>, LdpError> {
    let protocol = Protocol::new(config)?;
    Ok(protocol.randomize_index(index, rng)?.encode())
}

#[cfg(feature = "check")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
