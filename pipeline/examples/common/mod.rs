//! What the benchmark examples share: a seeded generator and bit flips for planted near-copies.

use tusk::hash::pdq::Pdq;

/// xorshift64: fast, seeded, the same sequence on every machine.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `h` with these bits (0–63) flipped; a bit listed twice flips back.
pub fn flip64(h: u64, bits: &[u32]) -> u64 {
    bits.iter().fold(h, |h, b| h ^ (1 << b))
}

/// `h` with these bits (0–255) flipped; a bit listed twice flips back.
pub fn flip_pdq(mut h: Pdq, bits: &[u32]) -> Pdq {
    for b in bits {
        h.0[(b / 64) as usize] ^= 1 << (b % 64);
    }
    h
}
