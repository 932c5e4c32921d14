//! Pinned hash functions: SHA-256 for protocol ids, and the small mixers that clients and
//! the server must compute identically (OLH's hash family, the count-mean sketch's hashes).
//!
//! These are part of the protocol: changing one changes every estimate, so they are fixed
//! here for protocol version 1 and tested against known values.

/// SHA-256 (FIPS 180-4) of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let bit_length = (data.len() as u64).wrapping_mul(8);
    let mut chunks = data.chunks_exact(64);
    for block in chunks.by_ref() {
        compress(&mut state, block);
    }
    let rest = chunks.remainder();
    let mut tail = [0_u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_length = if rest.len() < 56 { 64 } else { 128 };
    tail[tail_length - 8..tail_length].copy_from_slice(&bit_length.to_be_bytes());
    for block in tail[..tail_length].chunks_exact(64) {
        compress(&mut state, block);
    }
    let mut digest = [0_u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

const ROUND_CONSTANTS: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

fn compress(state: &mut [u32; 8], block: &[u8]) {
    let mut schedule = [0_u32; 64];
    for (word, bytes) in schedule.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for t in 16..64 {
        let s0 = schedule[t - 15].rotate_right(7)
            ^ schedule[t - 15].rotate_right(18)
            ^ (schedule[t - 15] >> 3);
        let s1 = schedule[t - 2].rotate_right(17)
            ^ schedule[t - 2].rotate_right(19)
            ^ (schedule[t - 2] >> 10);
        schedule[t] = schedule[t - 16]
            .wrapping_add(s0)
            .wrapping_add(schedule[t - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let choose = (e & f) ^ (!e & g);
        let temp1 = h
            .wrapping_add(s1)
            .wrapping_add(choose)
            .wrapping_add(ROUND_CONSTANTS[t])
            .wrapping_add(schedule[t]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let majority = (a & b) ^ (a & c) ^ (b & c);
        let temp2 = s0.wrapping_add(majority);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(temp1);
        d = c;
        c = b;
        b = a;
        a = temp1.wrapping_add(temp2);
    }
    for (word, add) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.wrapping_add(add);
    }
}

/// The 64-bit finaliser of MurmurHash3: a fixed bijection that mixes every input bit
/// into every output bit.
#[inline]
#[must_use]
pub const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The golden-ratio constant that separates OLH's two derived keys.
const OLH_KEY_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// OLH's hash family, version 1: the seed picks `h(v) = ⌊(a·v + b mod 2^64) · g / 2^64⌋`
/// with `a = fmix64(seed) | 1` and `b = fmix64(seed ^ 0x9e3779b97f4a7c15)`.
///
/// For distinct `v`, `v'` and a uniformly random seed, `a·(v - v')` is (near-)uniform
/// over the odd multiples of `2^t`, the largest power of two dividing `v - v'`, so the two
/// values collide with probability `1/g` up to a relative error of about `2^(t+1)·g/2^64`:
/// below `2^-23` for the domains (at most `2^24` values) and bucket counts (at most
/// `2^16`) Veil allows. Estimates need nothing more (see OLH's `PRIVACY.md`); privacy needs
/// nothing of the hash at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OlhHash {
    multiplier: u64,
    offset: u64,
}

impl OlhHash {
    /// The hash function that `seed` picks.
    #[inline]
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self {
            multiplier: fmix64(seed) | 1,
            offset: fmix64(seed ^ OLH_KEY_SALT),
        }
    }

    /// The 64-bit position `a·v + b` of item `v`, before it is cut into `g` buckets.
    #[inline]
    #[must_use]
    pub const fn position(self, item: u32) -> u64 {
        self.multiplier
            .wrapping_mul(item as u64)
            .wrapping_add(self.offset)
    }

    /// The bucket in `[0, g)` of item `v`.
    #[inline]
    #[must_use]
    pub const fn bucket(self, item: u32, g: u32) -> u32 {
        bucket_of(self.position(item), g)
    }

    /// The multiplier `a` (odd).
    #[must_use]
    pub const fn multiplier(self) -> u64 {
        self.multiplier
    }

    /// The offset `b`.
    #[must_use]
    pub const fn offset(self) -> u64 {
        self.offset
    }
}

/// `⌊position · g / 2^64⌋`.
#[inline]
#[must_use]
pub const fn bucket_of(position: u64, g: u32) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let bucket = ((position as u128 * g as u128) >> 64) as u32;
    bucket
}

/// The first position in bucket `y` of `g`: `⌈y · 2^64 / g⌉` (for `y <= g`; `y = g`
/// gives `2^64`, returned as a `u128`).
#[must_use]
pub const fn bucket_start(y: u32, g: u32) -> u128 {
    ((y as u128) << 64).div_ceil(g as u128)
}

/// The count-mean sketch's hash of a string for hash function `index`, version 1:
/// FNV-1a over the bytes, started from `fmix64(seed ^ fmix64(index + 1))`, finished with
/// `fmix64`, cut into `width` buckets like [`bucket_of`].
#[must_use]
pub fn sketch_hash(seed: u64, index: u32, value: &[u8], width: u32) -> u32 {
    let mut state = fmix64(seed ^ fmix64(u64::from(index) + 1));
    for &byte in value {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    bucket_of(fmix64(state), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> alloc::string::String {
        bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million = alloc::vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha256(&million)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn pinned_hashes_do_not_change() {
        // Changing these values changes every OLH and sketch estimate: bump the protocol
        // version instead.
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        let hash = OlhHash::new(42);
        assert_eq!(hash.bucket(7, 4), hash.bucket(7, 4));
        assert_eq!(
            (0..8)
                .map(|v| OlhHash::new(42).bucket(v, 4))
                .collect::<alloc::vec::Vec<_>>(),
            alloc::vec![0, 2, 0, 2, 0, 2, 0, 2]
        );
        assert_eq!(OlhHash::new(42).position(1000), 3_906_495_048_911_636_623);
        assert_eq!(sketch_hash(7, 0, b"fr", 1024), 835);
        assert_eq!(sketch_hash(7, 3, b"fr", 1024), 30);
    }

    #[test]
    fn bucket_start_is_the_first_position_of_the_bucket() {
        for g in [2_u32, 3, 4, 7, 1000] {
            for y in 0..g {
                let start = bucket_start(y, g);
                let start = u64::try_from(start).expect("below 2^64");
                assert_eq!(bucket_of(start, g), y);
                if start > 0 {
                    assert_eq!(bucket_of(start - 1, g), y - 1);
                }
            }
        }
    }
}
