//! The client's randomness: the browser's `crypto.getRandomValues`, read in blocks.

use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

use crate::WebError;

/// Bytes read from the browser per call (crypto.getRandomValues accepts up to 65,536).
const BLOCK: usize = 512;

/// A cryptographic generator that hands out the operating system's (in a browser: the
/// Web Crypto API's) random bytes, read `BLOCK` bytes at a time to keep calls across the
/// JavaScript boundary rare. It has no seed and no state besides unread bytes, so it cannot
/// be made reproducible.
#[derive(Debug)]
pub struct BrowserRng {
    block: [u8; BLOCK],
    /// The next unread byte of `block`.
    at: usize,
}

impl BrowserRng {
    /// A generator with its first block read.
    ///
    /// # Errors
    /// [`WebError::Randomness`] if the browser (or the operating system) gives no random
    /// bytes: nothing is randomized then, rather than with weaker randomness.
    pub fn new() -> Result<Self, WebError> {
        let mut rng = Self {
            block: [0; BLOCK],
            at: BLOCK,
        };
        rng.refill()?;
        Ok(rng)
    }

    fn refill(&mut self) -> Result<(), WebError> {
        getrandom::fill(&mut self.block).map_err(|error| WebError::Randomness {
            reason: error.to_string(),
        })?;
        self.at = 0;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        if self.at + N > BLOCK {
            // The first block was read in `new`, so the source works; it failing later is
            // not something to recover from by drawing weaker bits.
            self.refill()
                .expect("the random source failed after it had worked");
        }
        let mut bytes = [0; N];
        bytes.copy_from_slice(&self.block[self.at..self.at + N]);
        // Bytes handed out are not kept.
        self.block[self.at..self.at + N].fill(0);
        self.at += N;
        bytes
    }
}

impl TryRng for BrowserRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(u32::from_le_bytes(self.take()))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(u64::from_le_bytes(self.take()))
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Infallible> {
        for chunk in destination.chunks_mut(8) {
            let bytes: [u8; 8] = self.take();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for BrowserRng {}

#[cfg(test)]
mod tests {
    use rand_core::Rng;

    use super::*;

    #[test]
    fn draws_are_fresh_across_blocks() {
        let mut rng = BrowserRng::new().unwrap();
        // Several blocks' worth: every refill must give new bytes.
        let draws: Vec<u64> = (0..4 * BLOCK / 8).map(|_| rng.next_u64()).collect();
        let mut distinct = draws.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), draws.len());
        // Roughly half the bits are set.
        let ones: u32 = draws.iter().map(|draw| draw.count_ones()).sum();
        let bits = u32::try_from(draws.len() * 64).unwrap();
        assert!(
            (ones as f64 / f64::from(bits) - 0.5).abs() < 0.02,
            "{ones} of {bits}"
        );
        let mut bytes = [0_u8; 13];
        rng.fill_bytes(&mut bytes);
        assert_ne!(bytes, [0; 13]);
    }
}
