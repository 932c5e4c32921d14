//! The only place Veil creates randomness.
//!
//! Released noise comes from ChaCha20 seeded by the operating system. A fixed seed exists
//! for diagnostics and tests; whoever uses it is told the output is not private.

use anyhow::Context;
use rand::rngs::{ChaCha20Rng, SysRng};
use rand_core::SeedableRng;

/// A ChaCha20 generator seeded from the operating system's entropy source.
pub(crate) fn os_seeded() -> anyhow::Result<ChaCha20Rng> {
    ChaCha20Rng::try_from_rng(&mut SysRng)
        .context("reading the operating system's random number generator")
}

/// The generator of an audit: from `seed` when one is given, else OS-seeded. An audit
/// compares noisy outputs and releases none, so a seed needs no warning.
pub(crate) fn for_audit(seed: Option<u64>) -> anyhow::Result<ChaCha20Rng> {
    match seed {
        Some(seed) => Ok(ChaCha20Rng::seed_from_u64(seed)),
        None => os_seeded(),
    }
}

/// A generator from `seed` when one is given (with a warning on stderr that the output is
/// not private), else an OS-seeded one.
pub(crate) fn from_optional_seed(seed: Option<u64>) -> anyhow::Result<ChaCha20Rng> {
    match seed {
        Some(seed) => {
            errln!(
                "warning: --seed {seed} makes the noise reproducible: this output is NOT private; use it only for tests"
            );
            Ok(ChaCha20Rng::seed_from_u64(seed))
        }
        None => os_seeded(),
    }
}
