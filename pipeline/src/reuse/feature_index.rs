//! The second candidate stage: stored objects that share many local-feature descriptors with a
//! query, found through an inverted index over the ORB descriptors. Global hashes cannot see a
//! photo inside a screenshot of a white page, under a large watermark or cut by a crop; the
//! descriptors of its corners are still there. On `scripts/bench/link_robustness.sh` the
//! original of 97.5 % of the re-posts is among the 8 objects with the most votes (screenshots
//! 97 %, watermarks 91 %), against 61 % and 85 % for the hashes.
//!
//! Each descriptor is cut into [`TABLES`] keys of [`KEY_BITS`] bits sampled at fixed positions
//! (bit-sampling locality-sensitive hashing: two descriptors a few bits apart often share a
//! key, unrelated ones rarely). A stored object is indexed by the keys of its photo's
//! descriptors and of its mirror image's; a query votes for every object one of its descriptors
//! shares a key with, once per descriptor. Keys shared by a large share of the catalogue (the
//! corners of plain edges every photo has) are left out, as stop words are in text search.
//! Verification ([`super::verify`]) still decides every candidate.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::features::{Features, DESCRIPTOR_BYTES};

/// Bits per key: with ~440 descriptors a photo, a key this long is shared by few unrelated
/// descriptors in a catalogue of thousands, while a copy's descriptor (a few bits apart) still
/// often has the same key in one of the tables.
pub const KEY_BITS: usize = 20;
/// Keys per descriptor (hash tables).
pub const TABLES: usize = 4;
/// Fewest votes (query descriptors sharing a key with the object) that make a candidate. On the
/// link benchmark unrelated photos rarely pass 10 while re-posts have a median of 60–360.
pub const MIN_VOTES: u32 = 10;
/// Most candidates kept per query from this stage (the most voted).
pub const MAX_FEATURE_CANDIDATES: usize = 8;

/// The keys of one descriptor, one per table (the table's number in the top bits).
pub type Keys = [u32; TABLES];

/// Hashes the index's integer keys with one multiplication (Fibonacci hashing): the keys are
/// trusted and already well spread, and the standard SipHash made building the index most of
/// the time a catalog took to load.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u32(&mut self, k: u32) {
        self.write_u64(k as u64);
    }

    fn write_u64(&mut self, k: u64) {
        self.0 = (self.0.rotate_left(5) ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, k: usize) {
        self.write_u64(k as u64);
    }
}

/// A hash map keyed by integers, with [`KeyHasher`].
type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// An inverted index from descriptor keys to the catalogue entries (and their mirror images)
/// whose features have that key; entries are positions in [`super::Catalog::entries`].
#[derive(Debug, Clone, Default)]
pub struct FeatureIndex {
    /// Key → entry × 2 (+1 for the mirror image's features), each at most once per key.
    postings: IntMap<u32, Vec<u32>>,
    /// Entry → the keys of its photo's descriptors, to query with a stored object.
    entry_keys: IntMap<usize, Vec<Keys>>,
}

/// The bit positions each table samples: fixed (a seeded generator), so that stored and query
/// keys agree across processes and versions.
fn positions() -> &'static [[u8; KEY_BITS]; TABLES] {
    static POSITIONS: std::sync::OnceLock<[[u8; KEY_BITS]; TABLES]> = std::sync::OnceLock::new();
    POSITIONS.get_or_init(|| {
        // splitmix64
        let mut state: u64 = 0x7475_736b_6f72_6231;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        std::array::from_fn(|_| {
            // A partial Fisher–Yates shuffle of the 256 bit positions: KEY_BITS distinct ones.
            let mut all: Vec<u8> = (0..=255).collect();
            for i in 0..KEY_BITS {
                let j = i + (next() % (256 - i) as u64) as usize;
                all.swap(i, j);
            }
            std::array::from_fn(|i| all[i])
        })
    })
}

/// The keys of one descriptor.
pub fn keys(d: &[u8; DESCRIPTOR_BYTES]) -> Keys {
    let pos = positions();
    std::array::from_fn(|t| {
        let bits = pos[t].iter().enumerate().fold(0u32, |k, (i, &p)| k | ((((d[p as usize / 8] >> (p % 8)) & 1) as u32) << i));
        (t as u32) << KEY_BITS | bits
    })
}

/// The keys of every descriptor of a photo.
pub fn keys_of(f: &Features) -> Vec<Keys> {
    f.descriptors.iter().map(keys).collect()
}

impl FeatureIndex {
    /// Entries indexed.
    pub fn len(&self) -> usize {
        self.entry_keys.len()
    }

    /// Whether no entry is indexed (no stored features).
    pub fn is_empty(&self) -> bool {
        self.entry_keys.is_empty()
    }

    /// Indexes an entry's photo and its mirror image.
    pub fn insert(&mut self, entry: usize, direct: &Features, mirrored: &Features) {
        let own = keys_of(direct);
        for (flag, ks) in [(0u32, own.as_slice()), (1, keys_of(mirrored).as_slice())] {
            let mut unique: Vec<u32> = ks.iter().flatten().copied().collect();
            unique.sort_unstable();
            unique.dedup();
            for k in unique {
                self.postings.entry(k).or_default().push(entry as u32 * 2 + flag);
            }
        }
        self.entry_keys.insert(entry, own);
    }

    /// The keys a stored entry is queried with, when it has features.
    pub fn entry_keys(&self, entry: usize) -> Option<&[Keys]> {
        self.entry_keys.get(&entry).map(Vec::as_slice)
    }

    /// Longest posting list still used: a key found in more than 1/64 of the indexed pictures
    /// (each photo and its mirror image) says nothing about which photo it is.
    fn stop_length(&self) -> usize {
        (self.len() / 32).max(32)
    }

    /// Entries with at least [`MIN_VOTES`] votes from the query's descriptor keys, most voted
    /// first (ties by position), at most [`MAX_FEATURE_CANDIDATES`]; `skip` is left out (the
    /// query's own entry). The votes are the better of the photo's and its mirror image's.
    pub fn candidates(&self, query: &[Keys], skip: Option<usize>) -> Vec<(usize, u32)> {
        let stop = self.stop_length();
        let mut votes: IntMap<u32, u32> = IntMap::default();
        let mut hit: Vec<u32> = Vec::new();
        for ks in query {
            hit.clear();
            for k in ks {
                if let Some(list) = self.postings.get(k).filter(|l| l.len() <= stop) {
                    hit.extend_from_slice(list);
                }
            }
            hit.sort_unstable();
            hit.dedup();
            for &h in &hit {
                *votes.entry(h).or_default() += 1;
            }
        }
        let mut best: IntMap<usize, u32> = IntMap::default();
        for (h, v) in votes {
            let e = (h / 2) as usize;
            if Some(e) != skip && v >= MIN_VOTES {
                let b = best.entry(e).or_default();
                *b = (*b).max(v);
            }
        }
        let mut out: Vec<(usize, u32)> = best.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(MAX_FEATURE_CANDIDATES);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(seed: u64, n: usize) -> Features {
        let mut s = seed;
        let mut byte = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u8
        };
        Features {
            width: 100,
            height: 100,
            points: vec![[0.0, 0.0]; n],
            descriptors: (0..n).map(|_| std::array::from_fn(|_| byte())).collect(),
        }
    }

    #[test]
    fn keys_are_fixed_and_sample_distinct_bits() {
        for table in positions() {
            let mut p = table.to_vec();
            p.sort_unstable();
            p.dedup();
            assert_eq!(p.len(), KEY_BITS);
        }
        let d = [0xA5u8; DESCRIPTOR_BYTES];
        assert_eq!(keys(&d), keys(&d));
        assert_eq!(keys(&[0u8; DESCRIPTOR_BYTES]), std::array::from_fn(|t| (t as u32) << KEY_BITS));
    }

    #[test]
    fn a_copy_with_a_few_bits_flipped_is_voted_for_and_unrelated_photos_are_not() {
        let mut index = FeatureIndex::default();
        let empty = Features { width: 1, height: 1, points: Vec::new(), descriptors: Vec::new() };
        for e in 0..50 {
            index.insert(e, &photo(e as u64 + 1, 300), &empty);
        }
        // Entry 7's descriptors with 3 bits flipped each, as a re-compressed copy's would be.
        let mut copy = photo(8, 300);
        for (i, d) in copy.descriptors.iter_mut().enumerate() {
            for b in [i % 256, (i * 7 + 3) % 256, (i * 13 + 5) % 256] {
                d[b / 8] ^= 1 << (b % 8);
            }
        }
        let found = index.candidates(&keys_of(&copy), None);
        assert_eq!(found.first().map(|f| f.0), Some(7), "{found:?}");
        assert!(found[0].1 > 100, "{found:?}");
        assert_eq!(found.len(), 1, "unrelated photos voted for: {found:?}");
        // The entry itself is skipped when asked.
        assert!(index.candidates(index.entry_keys(7).unwrap(), Some(7)).is_empty());
        // A mirror image's features vote for the entry too.
        let mut mirrored = FeatureIndex::default();
        mirrored.insert(0, &empty, &photo(8, 300));
        assert_eq!(mirrored.candidates(&keys_of(&photo(8, 300)), None).first().map(|f| f.0), Some(0));
    }
}
