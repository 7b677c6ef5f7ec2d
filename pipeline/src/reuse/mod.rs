//! Re-used photos across sellers: the store's hashes in Hamming indexes ([`crate::index`]),
//! and the three questions analysts ask — which objects show this photo ([`Catalog::query`]),
//! which photos appear under several sellers ([`Catalog::clusters`]), and which sellers share
//! photos ([`links`], written out by [`export`]).

pub mod export;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::hash::pdq::{Pdq, MIN_QUALITY};
use crate::index::HammingIndex;
use crate::record::Hashes;
use crate::sink::sqlite::{Store, StoreError};

/// Default PDQ radius (best of the eight rotations/mirrors): with [`DEFAULT_PHASH_RADIUS`], the
/// pair of thresholds that kept the false-match rate ≤ 1e-4 on real photos and recalled the
/// most re-posts (scripts/bench/hash_robustness.sh).
pub const DEFAULT_PDQ_RADIUS: u32 = 62;
/// Default pHash radius, used together with [`DEFAULT_PDQ_RADIUS`].
pub const DEFAULT_PHASH_RADIUS: u32 = 10;

/// Which hash decides a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    /// PDQ within its radius (any rotation or mirror image) or pHash within its radius.
    Default,
    /// PDQ alone, any rotation or mirror image.
    Pdq,
    /// 64-bit pHash alone.
    Phash,
    /// 64-bit dHash alone.
    Dhash,
}

/// A match rule: the hash kind and its radius (for `Default`, `radius` is PDQ's and pHash keeps
/// [`DEFAULT_PHASH_RADIUS`]).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The hash kind.
    pub kind: HashKind,
    /// Largest distance that still matches.
    pub radius: u32,
}

impl Rule {
    /// The rule for a kind, with the given radius or the kind's default.
    pub fn new(kind: HashKind, radius: Option<u32>) -> Self {
        let default = match kind {
            HashKind::Default | HashKind::Pdq => DEFAULT_PDQ_RADIUS,
            HashKind::Phash => DEFAULT_PHASH_RADIUS,
            HashKind::Dhash => 9,
        };
        Rule { kind, radius: radius.unwrap_or(default) }
    }
}

/// One stored object and its hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The object's uri.
    pub uri: String,
    /// The seller account that posted it.
    pub seller_id: Option<String>,
    /// Its listing.
    pub listing_id: Option<String>,
    /// Its marketplace.
    pub platform: Option<String>,
    /// pHash.
    #[serde(skip)]
    pub phash: u64,
    /// dHash.
    #[serde(skip)]
    pub dhash: u64,
    /// PDQ, when the object was hashed by a tusk that computes it.
    #[serde(skip)]
    pub pdq: Option<Pdq>,
    /// PDQ's quality.
    pub pdq_quality: Option<u8>,
}

impl Entry {
    /// Whether the PDQ hash is missing or below Meta's quality cut-off (featureless images).
    pub fn pdq_unreliable(&self) -> bool {
        self.pdq_quality.is_none_or(|q| q < MIN_QUALITY)
    }
}

/// What a query looks for.
#[derive(Debug, Clone)]
pub struct Query {
    /// PDQ hashes to try: the query's own first, then its rotations and mirror images.
    pub pdq: Vec<Pdq>,
    /// pHash, when known.
    pub phash: Option<u64>,
    /// dHash, when known.
    pub dhash: Option<u64>,
}

impl Query {
    /// A query for a freshly hashed image (with the exact PDQ variants of
    /// [`crate::hash::PerceptualHasher::hash_query`]).
    pub fn from_image(h: &Hashes, variants: [Pdq; 8]) -> Self {
        Query { pdq: variants.to_vec(), phash: Some(h.phash), dhash: Some(h.dhash) }
    }

    /// A query for a stored object (PDQ variants derived from the bits).
    pub fn from_entry(e: &Entry) -> Self {
        Query { pdq: e.pdq.map(|p| p.dihedral().to_vec()).unwrap_or_default(), phash: Some(e.phash), dhash: Some(e.dhash) }
    }

    /// A query for a hash given as hex: 64 digits are PDQ, 16 digits are the 64-bit hash of
    /// `kind` (pHash unless `kind` is dHash).
    pub fn from_hex(hex: &str, kind: HashKind) -> Result<Self, String> {
        let hex = hex.trim();
        if let Some(p) = Pdq::from_hex(hex) {
            return Ok(Query { pdq: p.dihedral().to_vec(), phash: None, dhash: None });
        }
        let v = (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten().ok_or_else(|| {
            format!("--hash {hex:?}: expected 64 hex digits (PDQ) or 16 (pHash, or dHash with --hash-kind dhash)")
        })?;
        Ok(match kind {
            HashKind::Dhash => Query { pdq: Vec::new(), phash: None, dhash: Some(v) },
            _ => Query { pdq: Vec::new(), phash: Some(v), dhash: None },
        })
    }
}

/// One object matching a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Position of the matching entry in [`Catalog::entries`].
    #[serde(skip)]
    pub entry: usize,
    /// PDQ distance (best rotation or mirror image), when both sides have PDQ.
    pub pdq_distance: Option<u32>,
    /// pHash distance, when the query has a pHash.
    pub phash_distance: Option<u32>,
    /// dHash distance, when the query has a dHash.
    pub dhash_distance: Option<u32>,
    /// The hash that matched: `pdq`, `phash` or `dhash`.
    pub matched_by: &'static str,
    /// The match rests on a PDQ hash below the quality cut-off (featureless picture).
    pub low_quality: bool,
}

/// Every stored object with its hashes, indexed for Hamming search.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The objects, by position.
    pub entries: Vec<Entry>,
    pdq: HammingIndex<Pdq>,
    phash: HammingIndex<u64>,
    dhash: HammingIndex<u64>,
    by_uri: HashMap<String, usize>,
    loaded_until: String,
}

impl Catalog {
    /// Builds the catalog over `entries`.
    pub fn new(entries: Vec<Entry>) -> Self {
        let pdq = HammingIndex::build(entries.iter().map(|e| e.pdq.unwrap_or_default()).collect());
        let phash = HammingIndex::build(entries.iter().map(|e| e.phash).collect());
        let dhash = HammingIndex::build(entries.iter().map(|e| e.dhash).collect());
        let mut catalog = Catalog { entries: Vec::new(), pdq, phash, dhash, by_uri: HashMap::new(), loaded_until: String::new() };
        for (pos, e) in entries.into_iter().enumerate() {
            if e.pdq.is_none() {
                catalog.pdq.remove(pos as u32);
            }
            catalog.by_uri.insert(e.uri.clone(), pos);
            catalog.entries.push(e);
        }
        catalog
    }

    /// Loads every object of the store.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let (entries, until) = fetch(store, "").await?;
        let mut catalog = Catalog::new(entries);
        catalog.loaded_until = until;
        Ok(catalog)
    }

    /// Adds the objects written to the store since the last load or refresh (new objects, and
    /// objects whose bytes changed, which replace their old entry); returns how many. For a
    /// catalog kept in memory while scans keep writing.
    pub async fn refresh(&mut self, store: &Store) -> Result<usize, StoreError> {
        let (entries, until) = fetch(store, &self.loaded_until).await?;
        let mut n = 0;
        for e in entries {
            // Rows from the last loaded millisecond come again (`>=`, so that a row committed
            // in that same millisecond is not missed); unchanged ones are skipped.
            if self.by_uri(&e.uri).is_some_and(|p| self.entries[p] == e) {
                continue;
            }
            self.insert(e);
            n += 1;
        }
        if !until.is_empty() {
            self.loaded_until = until;
        }
        Ok(n)
    }

    /// Adds one object (replacing an entry with the same uri).
    pub fn insert(&mut self, e: Entry) {
        if let Some(&old) = self.by_uri.get(&e.uri) {
            self.pdq.remove(old as u32);
            self.phash.remove(old as u32);
            self.dhash.remove(old as u32);
        }
        let pos = self.entries.len();
        self.pdq.insert(e.pdq.unwrap_or_default());
        if e.pdq.is_none() {
            self.pdq.remove(pos as u32);
        }
        self.phash.insert(e.phash);
        self.dhash.insert(e.dhash);
        self.by_uri.insert(e.uri.clone(), pos);
        self.entries.push(e);
    }

    /// The current entry for a uri.
    pub fn by_uri(&self, uri: &str) -> Option<usize> {
        self.by_uri.get(uri).copied()
    }

    /// Positions of the current entries of a seller.
    pub fn by_seller(&self, seller: &str) -> Vec<usize> {
        self.current().into_iter().filter(|&p| self.entries[p].seller_id.as_deref() == Some(seller)).collect()
    }

    /// Positions of the current entry of every uri (replaced entries left out), ascending.
    fn current(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.by_uri.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// Every current object that matches the query under the rule, nearest first.
    pub fn query(&self, q: &Query, rule: &Rule) -> Vec<Match> {
        let mut hits: BTreeMap<usize, &'static str> = BTreeMap::new();
        let use_pdq = matches!(rule.kind, HashKind::Default | HashKind::Pdq);
        if use_pdq {
            for v in &q.pdq {
                for (pos, _) in self.pdq.search(v, rule.radius) {
                    hits.entry(pos as usize).or_insert("pdq");
                }
            }
        }
        let sixty_four = match rule.kind {
            HashKind::Default => q.phash.map(|h| (&self.phash, h, DEFAULT_PHASH_RADIUS, "phash")),
            HashKind::Phash => q.phash.map(|h| (&self.phash, h, rule.radius, "phash")),
            HashKind::Dhash => q.dhash.map(|h| (&self.dhash, h, rule.radius, "dhash")),
            HashKind::Pdq => None,
        };
        if let Some((index, h, radius, name)) = sixty_four {
            for (pos, _) in index.search(&h, radius) {
                hits.entry(pos as usize).or_insert(name);
            }
        }
        let mut out: Vec<Match> = hits
            .into_iter()
            .map(|(entry, matched_by)| {
                let e = &self.entries[entry];
                let pdq_distance = e.pdq.filter(|_| !q.pdq.is_empty()).map(|p| q.pdq.iter().map(|v| v.distance(&p)).min().unwrap_or(256));
                Match {
                    entry,
                    pdq_distance,
                    phash_distance: q.phash.map(|h| (h ^ e.phash).count_ones()),
                    dhash_distance: q.dhash.map(|h| (h ^ e.dhash).count_ones()),
                    matched_by,
                    low_quality: matched_by == "pdq" && e.pdq_unreliable(),
                }
            })
            .collect();
        // Nearest first, on PDQ's 256-bit scale.
        let key = |m: &Match| match m.matched_by {
            "pdq" => m.pdq_distance.unwrap_or(256),
            "phash" => m.phash_distance.unwrap_or(64) * 4,
            _ => m.dhash_distance.unwrap_or(64) * 4,
        };
        out.sort_by_key(|m| (key(m), m.entry));
        out
    }

    /// Groups of objects that show the same photo (connected by matches under the rule, not
    /// through low-quality PDQ hashes) and span at least `min_sellers` sellers, largest first.
    pub fn clusters(&self, rule: &Rule, min_sellers: usize) -> Vec<Cluster> {
        let current = self.current();
        let mut parent: HashMap<usize, usize> = current.iter().map(|&p| (p, p)).collect();
        fn find(parent: &mut HashMap<usize, usize>, mut x: usize) -> usize {
            while parent[&x] != x {
                let up = parent[&parent[&x]];
                parent.insert(x, up);
                x = up;
            }
            x
        }
        for &p in &current {
            for m in self.query(&Query::from_entry(&self.entries[p]), rule) {
                if m.entry == p || m.low_quality || !parent.contains_key(&m.entry) {
                    continue;
                }
                let (a, b) = (find(&mut parent, p), find(&mut parent, m.entry));
                if a != b {
                    parent.insert(a.max(b), a.min(b));
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &p in &current {
            let root = find(&mut parent, p);
            groups.entry(root).or_default().push(p);
        }
        let mut out: Vec<Cluster> = groups
            .into_values()
            .filter(|members| members.len() >= 2)
            .map(|members| {
                let sellers: BTreeSet<String> = members.iter().filter_map(|&p| self.entries[p].seller_id.clone()).collect();
                Cluster { members, sellers: sellers.into_iter().collect() }
            })
            .filter(|c| c.sellers.len() >= min_sellers)
            .collect();
        out.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(b.sellers.len().cmp(&a.sellers.len())).then(a.members.cmp(&b.members)));
        out
    }
}

/// Objects showing the same photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Positions in [`Catalog::entries`], ascending.
    pub members: Vec<usize>,
    /// The distinct sellers among them, sorted.
    pub sellers: Vec<String>,
}

/// Two sellers who posted the same photos.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// One seller (the smaller id).
    pub source: String,
    /// The other.
    pub target: String,
    /// Number of distinct photos (clusters) both posted.
    pub weight: usize,
    /// Up to three example pairs of object uris, one of each seller.
    pub evidence: Vec<(String, String)>,
}

/// Evidence pairs kept per link.
const EVIDENCE_PER_LINK: usize = 3;

/// The seller–seller graph: one edge per pair of sellers sharing at least one cluster, weighted
/// by the number of shared photos, heaviest first.
pub fn links(catalog: &Catalog, clusters: &[Cluster]) -> Vec<Link> {
    let mut edges: BTreeMap<(String, String), Link> = BTreeMap::new();
    for c in clusters {
        let mut first_of: BTreeMap<&str, &str> = BTreeMap::new();
        for &p in &c.members {
            let e = &catalog.entries[p];
            if let Some(s) = e.seller_id.as_deref() {
                first_of.entry(s).or_insert(e.uri.as_str());
            }
        }
        let sellers: Vec<(&str, &str)> = first_of.into_iter().collect();
        for (i, (a, ua)) in sellers.iter().enumerate() {
            for (b, ub) in &sellers[i + 1..] {
                let link = edges.entry((a.to_string(), b.to_string())).or_insert_with(|| Link {
                    source: a.to_string(),
                    target: b.to_string(),
                    weight: 0,
                    evidence: Vec::new(),
                });
                link.weight += 1;
                if link.evidence.len() < EVIDENCE_PER_LINK {
                    link.evidence.push((ua.to_string(), ub.to_string()));
                }
            }
        }
    }
    let mut out: Vec<Link> = edges.into_values().collect();
    out.sort_by(|a, b| b.weight.cmp(&a.weight).then((&a.source, &a.target).cmp(&(&b.source, &b.target))));
    out
}

/// Objects updated at or after `since` (an `updated_at` timestamp; "" for all), and the latest
/// `updated_at` seen.
async fn fetch(store: &Store, since: &str) -> Result<(Vec<Entry>, String), StoreError> {
    type Row = (String, Option<String>, Option<String>, Option<String>, String, String, Option<String>, Option<i64>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, updated_at
         FROM objects WHERE updated_at >= ? ORDER BY updated_at, id",
    )
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    let mut until = String::new();
    let entries = rows
        .into_iter()
        .map(|(uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, updated_at)| {
            until = updated_at;
            Entry {
                uri,
                seller_id,
                listing_id,
                platform,
                phash: u64::from_str_radix(&phash, 16).unwrap_or(0),
                dhash: u64::from_str_radix(&dhash, 16).unwrap_or(0),
                pdq: pdq.as_deref().and_then(Pdq::from_hex),
                pdq_quality: pdq_quality.map(|q| q.clamp(0, 100) as u8),
            }
        })
        .collect();
    Ok((entries, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uri: &str, seller: &str, phash: u64, pdq: Pdq) -> Entry {
        Entry {
            uri: uri.into(),
            seller_id: Some(seller.into()),
            listing_id: None,
            platform: None,
            phash,
            dhash: phash.rotate_left(7),
            pdq: Some(pdq),
            pdq_quality: Some(100),
        }
    }

    fn pdq(seed: u64) -> Pdq {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        Pdq([next(), next(), next(), next()])
    }

    #[test]
    fn clusters_and_links_join_sellers_who_share_a_photo() {
        let a = pdq(1);
        let mut a2 = a;
        a2.0[0] ^= 0xff; // 8 bits off: a re-post
        let catalog = Catalog::new(vec![
            entry("x/1", "ana", 0x1111_0000_ffff_0000, a),
            entry("x/2", "zed", 0x9999_0000_ffff_0000, a2),
            entry("x/3", "ana", 0x0f0f_0f0f_0f0f_0f0f, pdq(2)),
            entry("x/4", "bo", 0xf0f0_f0f0_f0f0_f0f0, pdq(3)),
            entry("x/5", "ana", 0x1111_0000_ffff_0000, a), // same seller re-using: one seller only
        ]);
        let found = catalog.query(&Query::from_entry(&catalog.entries[0]), &Rule::new(HashKind::Pdq, Some(31)));
        let uris: Vec<&str> = found.iter().map(|m| catalog.entries[m.entry].uri.as_str()).collect();
        assert_eq!(uris, ["x/1", "x/5", "x/2"]);
        assert_eq!(found[2].pdq_distance, Some(8));
        let clusters = catalog.clusters(&Rule::new(HashKind::Default, None), 2);
        assert_eq!(clusters, vec![Cluster { members: vec![0, 1, 4], sellers: vec!["ana".into(), "zed".into()] }]);
        let l = links(&catalog, &clusters);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].source.as_str(), l[0].target.as_str(), l[0].weight), ("ana", "zed", 1));
        assert_eq!(l[0].evidence, vec![("x/1".to_string(), "x/2".to_string())]);
    }

    #[test]
    fn low_quality_pdq_does_not_link_and_replaced_objects_drop_out() {
        let flat = pdq(9);
        let mut catalog = Catalog::new(vec![entry("a", "s1", 1, flat), entry("b", "s2", u64::MAX, flat)]);
        catalog.entries[0].pdq_quality = Some(10);
        catalog.entries[1].pdq_quality = Some(10);
        let q = Query::from_entry(&catalog.entries[0]);
        assert!(catalog.query(&q, &Rule::new(HashKind::Pdq, None)).iter().all(|m| m.low_quality));
        assert!(catalog.clusters(&Rule::new(HashKind::Pdq, None), 2).is_empty());
        // "b" is re-hashed with a different picture: its old hash no longer matches.
        catalog.insert(entry("b", "s2", u64::MAX, pdq(10)));
        let hits = catalog.query(&q, &Rule::new(HashKind::Pdq, Some(31)));
        assert_eq!(hits.len(), 1);
        assert_eq!(catalog.entries[hits[0].entry].uri, "a");
    }

    #[test]
    fn hex_queries_name_their_hash() {
        assert_eq!(Query::from_hex(&"ab".repeat(32), HashKind::Default).unwrap().pdq.len(), 8);
        assert_eq!(Query::from_hex("00000000000000ff", HashKind::Dhash).unwrap().dhash, Some(255));
        assert!(Query::from_hex("xyz", HashKind::Default).is_err());
    }
}
