//! An in-memory Hamming-distance index over perceptual hashes: multi-index hashing (Norouzi,
//! Punjani & Fleet, 2012). Each hash is cut into `m` chunks with one table per chunk; two hashes
//! within distance `r` agree within `⌊r / m⌋` bits on at least one chunk (pigeonhole), so a query
//! only visits the table buckets near its own chunks, then checks the full distance. Exact: it
//! returns the same set as a linear scan.

use crate::hash::pdq::Pdq;

/// A fixed-width bit string the index can cut into chunks.
pub trait HammingHash: Copy + Send + Sync {
    /// Width in bits.
    const BITS: u32;
    /// Number of differing bits.
    fn distance(&self, other: &Self) -> u32;
    /// Bits `start .. start + len` (len ≤ 32) as an integer.
    fn chunk(&self, start: u32, len: u32) -> u32;
}

impl HammingHash for u64 {
    const BITS: u32 = 64;
    fn distance(&self, other: &Self) -> u32 {
        (self ^ other).count_ones()
    }
    fn chunk(&self, start: u32, len: u32) -> u32 {
        ((self >> start) & ((1u64 << len) - 1)) as u32
    }
}

impl HammingHash for Pdq {
    const BITS: u32 = 256;
    fn distance(&self, other: &Self) -> u32 {
        Pdq::distance(self, other)
    }
    fn chunk(&self, start: u32, len: u32) -> u32 {
        let (w, b) = ((start / 64) as usize, start % 64);
        let mut v = self.0[w] >> b;
        if b + len > 64 {
            v |= self.0[w + 1] << (64 - b);
        }
        (v & ((1u64 << len) - 1)) as u32
    }
}

/// One chunk's table: entry positions grouped by the chunk's value (offsets into `entries`).
#[derive(Debug, Clone)]
struct Table {
    start: u32,
    len: u32,
    offsets: Vec<u32>,
    entries: Vec<u32>,
}

/// What one bucket probe costs, in hashes a linear scan gets through in the same time.
const PROBE_COST_IN_HASHES: f64 = 40.0;

/// Largest chunk in bits: keeps each table's offset array at 2^22 × 4 bytes at most.
const MAX_CHUNK_BITS: u32 = 22;

/// The index. Entries are numbered in insertion order (their *position*), which callers map to
/// their own records.
#[derive(Debug, Clone)]
pub struct HammingIndex<H: HammingHash> {
    hashes: Vec<H>,
    alive: Vec<bool>,
    tables: Vec<Table>,
    /// Positions added since the tables were built; scanned linearly until the next rebuild.
    pending: Vec<u32>,
}

impl<H: HammingHash> Default for HammingIndex<H> {
    fn default() -> Self {
        Self::build(Vec::new())
    }
}

impl<H: HammingHash> HammingIndex<H> {
    /// Builds the index over `hashes` (position = index in the vector).
    pub fn build(hashes: Vec<H>) -> Self {
        let alive = vec![true; hashes.len()];
        let mut index = Self { hashes, alive, tables: Vec::new(), pending: Vec::new() };
        index.rebuild();
        index
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash at a position.
    pub fn hash(&self, pos: u32) -> H {
        self.hashes[pos as usize]
    }

    /// Adds a hash (as objects arrive) and returns its position. New entries are scanned
    /// linearly until they are 1/16 of the index, then the tables are rebuilt.
    pub fn insert(&mut self, hash: H) -> u32 {
        let pos = self.hashes.len() as u32;
        self.hashes.push(hash);
        self.alive.push(true);
        self.pending.push(pos);
        if self.pending.len() > 4096.max(self.hashes.len() / 16) {
            self.rebuild();
        }
        pos
    }

    /// Removes an entry (an object whose bytes changed); later queries skip it.
    pub fn remove(&mut self, pos: u32) {
        if let Some(a) = self.alive.get_mut(pos as usize) {
            *a = false;
        }
    }

    /// Approximate heap size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.len() * (std::mem::size_of::<H>() + 1)
            + self.pending.len() * 4
            + self.tables.iter().map(|t| (t.offsets.len() + t.entries.len()) * 4).sum::<usize>()
    }

    /// Recomputes the chunk layout for the current size and rebuilds every table.
    fn rebuild(&mut self) {
        let n = self.hashes.len().max(2) as f64;
        // Norouzi et al.: chunks of about log2(n) bits balance probes against bucket sizes.
        let target = (n.log2().round() as u32).clamp(8, MAX_CHUNK_BITS);
        let m = H::BITS.div_ceil(target).max(1);
        let mut tables = Vec::with_capacity(m as usize);
        let mut start = 0;
        for k in 0..m {
            let len = H::BITS / m + u32::from(k < H::BITS % m);
            tables.push(self.table(start, len));
            start += len;
        }
        self.tables = tables;
        self.pending.clear();
    }

    fn table(&self, start: u32, len: u32) -> Table {
        let buckets = 1usize << len;
        let mut offsets = vec![0u32; buckets + 1];
        for h in &self.hashes {
            offsets[h.chunk(start, len) as usize + 1] += 1;
        }
        for i in 0..buckets {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; self.hashes.len()];
        for (pos, h) in self.hashes.iter().enumerate() {
            let slot = &mut fill[h.chunk(start, len) as usize];
            entries[*slot as usize] = pos as u32;
            *slot += 1;
        }
        Table { start, len, offsets, entries }
    }

    /// Every live entry within `radius` of `query`, as (position, distance), nearest first.
    pub fn search(&self, query: &H, radius: u32) -> Vec<(u32, u32)> {
        let m = self.tables.len() as u32;
        let per_chunk = radius / m.max(1);
        let mut out = Vec::new();
        let probes: f64 = self.tables.iter().map(|t| ball_size(t.len, per_chunk)).sum();
        // A probe costs about as much as scanning 40 hashes (two cache misses against a
        // streamed popcount; scripts/bench/index.sh): with more probes than that, scan.
        if m == 0 || probes * PROBE_COST_IN_HASHES > self.hashes.len() as f64 {
            return self.scan(query, radius);
        }
        {
            let keys: Vec<u32> = self.tables.iter().map(|t| query.chunk(t.start, t.len)).collect();
            for (k, t) in self.tables.iter().enumerate() {
                for_each_within(keys[k], t.len, per_chunk, &mut |key| {
                    let (a, b) = (t.offsets[key as usize] as usize, t.offsets[key as usize + 1] as usize);
                    for &pos in &t.entries[a..b] {
                        let h = &self.hashes[pos as usize];
                        // Found already through an earlier table? Then skip (no duplicates).
                        let earlier = self.tables[..k]
                            .iter()
                            .zip(&keys)
                            .any(|(t2, key2)| (h.chunk(t2.start, t2.len) ^ key2).count_ones() <= per_chunk);
                        if earlier || !self.alive[pos as usize] {
                            continue;
                        }
                        let d = h.distance(query);
                        if d <= radius {
                            out.push((pos, d));
                        }
                    }
                });
            }
        }
        for &pos in &self.pending {
            let d = self.hashes[pos as usize].distance(query);
            if d <= radius && self.alive[pos as usize] {
                out.push((pos, d));
            }
        }
        out.sort_unstable_by_key(|&(pos, d)| (d, pos));
        out
    }

    /// A plain linear scan over every live entry: the baseline the index is measured against.
    pub fn scan(&self, query: &H, radius: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self
            .hashes
            .iter()
            .enumerate()
            .filter_map(|(pos, h)| {
                let d = h.distance(query);
                (d <= radius && self.alive[pos]).then_some((pos as u32, d))
            })
            .collect();
        out.sort_unstable_by_key(|&(pos, d)| (d, pos));
        out
    }
}

/// Number of `len`-bit values within `r` bits of a given one.
fn ball_size(len: u32, r: u32) -> f64 {
    let mut total = 0f64;
    let mut c = 1f64;
    for k in 0..=r.min(len) {
        total += c;
        c = c * (len - k) as f64 / (k + 1) as f64;
    }
    total
}

/// Calls `f` with every `len`-bit value within `r` bits of `key` (each once).
fn for_each_within(key: u32, len: u32, r: u32, f: &mut impl FnMut(u32)) {
    fn rec(value: u32, from: u32, len: u32, left: u32, f: &mut impl FnMut(u32)) {
        f(value);
        if left == 0 {
            return;
        }
        for bit in from..len {
            rec(value ^ (1 << bit), bit + 1, len, left - 1, f);
        }
    }
    rec(key, 0, len, r, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// `h` with `bits` distinct bits flipped.
    fn flip(h: u64, bits: u32, seed: &mut u64) -> u64 {
        let mut mask = 0u64;
        while mask.count_ones() < bits {
            mask |= 1 << (rng(seed) % 64);
        }
        h ^ mask
    }

    #[test]
    fn same_answers_as_a_linear_scan() {
        let mut seed = 42u64;
        let mut hashes: Vec<u64> = (0..20_000).map(|_| rng(&mut seed)).collect();
        let base = hashes[..200].to_vec();
        for (i, h) in base.iter().enumerate() {
            hashes.push(flip(*h, (i % 14) as u32, &mut seed));
        }
        let index = HammingIndex::build(hashes.clone());
        assert!(index.tables.len() >= 2);
        for radius in [0, 3, 4, 8, 12, 20] {
            for q in base.iter().take(60) {
                assert_eq!(index.search(q, radius), index.scan(q, radius), "radius {radius}");
            }
        }
    }

    #[test]
    fn pdq_chunks_span_words_and_match_the_scan() {
        let mut seed = 7u64;
        let mut hashes: Vec<Pdq> = (0..5_000).map(|_| Pdq([rng(&mut seed), rng(&mut seed), rng(&mut seed), rng(&mut seed)])).collect();
        let q = hashes[10];
        let mut near = q;
        for b in [3usize, 64, 65, 130, 200, 255] {
            near.0[b / 64] ^= 1 << (b % 64);
        }
        hashes.push(near);
        let index = HammingIndex::build(hashes);
        let found = index.search(&q, 31);
        assert_eq!(found, index.scan(&q, 31));
        assert_eq!(found, vec![(10, 0), (5_000, 6)]);
        assert_eq!(Pdq([0, 1, 0, 0]).chunk(60, 8), 1 << 4);
    }

    #[test]
    fn inserted_entries_are_found_and_removed_ones_are_not() {
        let mut seed = 3u64;
        let mut index = HammingIndex::build((0..1_000).map(|_| rng(&mut seed)).collect());
        let q = rng(&mut seed);
        assert!(index.search(&q, 2).is_empty());
        let pos = index.insert(q ^ 0b101);
        assert_eq!(index.search(&q, 2), vec![(pos, 2)]);
        for _ in 0..5_000 {
            index.insert(rng(&mut seed)); // forces a rebuild with the new entry in the tables
        }
        assert!(index.pending.len() < 5_000);
        assert_eq!(index.search(&q, 2), vec![(pos, 2)]);
        index.remove(pos);
        assert!(index.search(&q, 2).is_empty());
    }
}
