//! Re-used photos across sellers: the store's hashes in Hamming indexes ([`crate::index`]),
//! and the three questions analysts ask — which objects show this photo ([`matches`]), which
//! photos appear under several sellers ([`clusters`]), and which sellers share photos
//! ([`links`], written out by [`export`]).
//!
//! Hashes and local features only propose: [`Catalog::candidates`] finds objects whose picture,
//! or a part of it (the photo cut out of a screenshot, a centre crop), hashes near the query's,
//! and objects that share many ORB descriptors with it ([`feature_index`]). A candidate
//! becomes a match only when [`verify`] confirms it with local features and geometry, or, for
//! low-texture photos where features are too few to decide, when a strict hash rule holds
//! ([`STRICT_PDQ_RADIUS`]). Every match carries that evidence.

pub mod export;
pub mod feature_index;
pub mod features;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::hash::pdq::{Pdq, MIN_QUALITY};
use crate::index::HammingIndex;
use crate::record::{Hashes, View};
use crate::store::{ObjectRow, Store, StoreError};
use feature_index::FeatureIndex;
use features::ObjectFeatures;
use verify::{Evidence, Params};

/// Default PDQ radius of the candidate stage (best of the eight rotations/mirrors, over every
/// pair of views): loose, since verification decides. At 90 bits, 95 % of the re-posts of
/// `scripts/bench/link_robustness.sh` become candidates, with about 5 candidates per photo
/// among 3,400 unrelated ones.
pub const DEFAULT_PDQ_RADIUS: u32 = 90;
/// Most candidates kept per query (the nearest): bounds the verification work per photo in a
/// large catalogue, where a loose radius finds many look-alikes.
pub const MAX_CANDIDATES: usize = 32;
/// Default pHash radius of the candidate stage, used together with [`DEFAULT_PDQ_RADIUS`].
pub const DEFAULT_PHASH_RADIUS: u32 = 10;
/// The strict rule for photos too plain for local features: PDQ (whole pictures, best rotation
/// or mirror image) within this many bits, both hashes of quality ≥ [`MIN_QUALITY`] (Meta's
/// usual match threshold for PDQ).
pub const STRICT_PDQ_RADIUS: u32 = 31;

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

/// The hashes of one view of a stored picture.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewHash {
    /// `whole` (the picture inside its borders), `photo` (cut out of a screenshot or frame),
    /// `centre5`, `centre10` (centre crops).
    pub view: String,
    /// pHash.
    pub phash: u64,
    /// dHash.
    pub dhash: u64,
    /// PDQ, when computed.
    pub pdq: Option<Pdq>,
    /// PDQ's quality.
    pub pdq_quality: Option<u8>,
}

impl ViewHash {
    /// The whole picture's hashes.
    pub fn whole(h: &Hashes) -> Self {
        ViewHash { view: "whole".into(), phash: h.phash, dhash: h.dhash, pdq: Some(h.pdq), pdq_quality: Some(h.pdq_quality) }
    }

    fn of(v: &View) -> Self {
        ViewHash { view: v.view.clone(), ..ViewHash::whole(&v.hashes) }
    }

    /// Whether the PDQ hash is missing or below Meta's quality cut-off (featureless images).
    pub fn pdq_unreliable(&self) -> bool {
        self.pdq.is_none() || self.pdq_quality.is_none_or(|q| q < MIN_QUALITY)
    }
}

/// One stored object and its hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The object's id in the store (to fetch its local features).
    #[serde(skip)]
    pub id: i64,
    /// The object's uri.
    pub uri: String,
    /// The seller account that posted it.
    pub seller_id: Option<String>,
    /// Its listing.
    pub listing_id: Option<String>,
    /// Its marketplace.
    pub platform: Option<String>,
    /// PDQ's quality of the whole picture.
    pub pdq_quality: Option<u8>,
    /// The whole picture's hashes first, then its other views'.
    #[serde(skip)]
    pub views: Vec<ViewHash>,
}

impl Entry {
    /// The whole picture's hashes.
    pub fn whole(&self) -> &ViewHash {
        &self.views[0]
    }
}

/// What a query looks for: the hashes of each of its views (the whole picture first), and its
/// local features when it has them.
#[derive(Debug, Clone)]
pub struct Query {
    /// Per view: its name, its PDQ hashes (its own first, then its rotations and mirror
    /// images), pHash and dHash when known.
    pub views: Vec<QueryView>,
    /// Local features, for verification; `None` for a bare hash.
    pub features: Option<Arc<ObjectFeatures>>,
}

/// The hashes of one view of a query.
#[derive(Debug, Clone)]
pub struct QueryView {
    /// The view's name (`whole`, `photo`, `centre5`, `centre10`).
    pub view: String,
    /// PDQ hashes to try: the view's own first, then its rotations and mirror images.
    pub pdq: Vec<Pdq>,
    /// pHash, when known.
    pub phash: Option<u64>,
    /// dHash, when known.
    pub dhash: Option<u64>,
    /// Whether the PDQ hash is below the quality cut-off.
    pub low_quality: bool,
}

impl Query {
    /// A query for a freshly hashed image: its hashes with the exact PDQ variants of the whole
    /// picture ([`crate::hash::PerceptualHasher::hash_query`]), its views, its features.
    pub fn from_image(h: &Hashes, variants: [Pdq; 8], views: &[View], features: Option<Arc<ObjectFeatures>>) -> Self {
        let mut out = vec![QueryView { view: "whole".into(), pdq: variants.to_vec(), phash: Some(h.phash), dhash: Some(h.dhash), low_quality: h.pdq_quality < MIN_QUALITY }];
        out.extend(views.iter().map(|v| QueryView::of(&ViewHash::of(v))));
        Query { views: out, features }
    }

    /// A query for a stored object (PDQ variants derived from the bits); features attached by
    /// the caller.
    pub fn from_entry(e: &Entry) -> Self {
        Query { views: e.views.iter().map(QueryView::of).collect(), features: None }
    }

    /// A query for a hash given as hex: 64 digits are PDQ, 16 digits are the 64-bit hash of
    /// `kind` (pHash unless `kind` is dHash).
    pub fn from_hex(hex: &str, kind: HashKind) -> Result<Self, String> {
        let hex = hex.trim();
        let view = |pdq: Vec<Pdq>, phash, dhash| Query { views: vec![QueryView { view: "whole".into(), pdq, phash, dhash, low_quality: false }], features: None };
        if let Some(p) = Pdq::from_hex(hex) {
            return Ok(view(p.dihedral().to_vec(), None, None));
        }
        let v = (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten().ok_or_else(|| {
            format!("--hash {hex:?}: expected 64 hex digits (PDQ) or 16 (pHash, or dHash with --hash-kind dhash)")
        })?;
        Ok(match kind {
            HashKind::Dhash => view(Vec::new(), None, Some(v)),
            _ => view(Vec::new(), Some(v), None),
        })
    }
}

impl QueryView {
    /// The whole picture is searched in all eight rotations and mirror images; its parts (cut
    /// out of a screenshot, centre crops) as they are and mirrored, which keeps the number of
    /// index searches per object at 14 rather than 32.
    fn of(v: &ViewHash) -> Self {
        let variants = if v.view == "whole" { 8 } else { 2 };
        QueryView {
            view: v.view.clone(),
            pdq: v.pdq.map(|p| p.dihedral()[..variants].to_vec()).unwrap_or_default(),
            phash: Some(v.phash),
            dhash: Some(v.dhash),
            low_quality: v.pdq_unreliable(),
        }
    }
}

/// How a candidate was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// Not decided yet (a bare candidate from the hashes).
    Candidate,
    /// Local features and geometry ([`verify`]).
    Features,
    /// The strict hash rule, for photos too plain (or too small) for local features.
    StrictHash,
}

/// One stored object found for a query: the hash evidence that made it a candidate, and, once
/// decided, whether it is a match and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Position of the matching entry in [`Catalog::entries`].
    #[serde(skip)]
    pub entry: usize,
    /// Smallest PDQ distance over the views and their rotations and mirror images.
    pub pdq_distance: Option<u32>,
    /// PDQ distance between the whole pictures (best rotation or mirror image).
    pub whole_pdq_distance: Option<u32>,
    /// Smallest pHash distance over the views.
    pub phash_distance: Option<u32>,
    /// dHash distance between the whole pictures.
    pub dhash_distance: Option<u32>,
    /// What made it a candidate: `pdq`, `phash` or `dhash` (hashes), or `features` (shared
    /// ORB descriptors, [`feature_index`]).
    pub matched_by: &'static str,
    /// Query descriptors sharing a key with the object's ([`feature_index`]), when the query
    /// had features and the object is among its most voted.
    pub feature_votes: Option<u32>,
    /// The views whose hashes met, `query-view~stored-view` (e.g. `photo~whole`).
    pub views: String,
    /// The candidacy rests on a PDQ hash below the quality cut-off (featureless picture).
    pub low_quality: bool,
    /// How it was decided.
    pub decided_by: DecidedBy,
    /// Whether it is a match (the same photo); false for undecided candidates.
    pub matched: bool,
    /// What local features found, when both sides had enough of them.
    pub evidence: Option<Evidence>,
}

impl Match {
    /// Decides the candidate: by local features when both sides have enough keypoints, else by
    /// the strict hash rule.
    pub fn decide(&mut self, query: Option<&ObjectFeatures>, stored: Option<&ObjectFeatures>, p: &Params) {
        let evidence = match (query, stored) {
            (Some(a), Some(b)) => verify::verify(a, b, p).unwrap_or_else(|e| {
                tracing::warn!("verification failed: {e}");
                None
            }),
            _ => None,
        };
        match evidence {
            Some(ev) => {
                self.decided_by = DecidedBy::Features;
                self.matched = ev.verified;
                self.evidence = Some(ev);
            }
            None => {
                self.decided_by = DecidedBy::StrictHash;
                self.matched = !self.low_quality && self.whole_pdq_distance.is_some_and(|d| d <= STRICT_PDQ_RADIUS);
            }
        }
    }
}

/// Every stored object with its hashes, indexed for Hamming search: one slot per view.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// The objects, by position.
    pub entries: Vec<Entry>,
    pdq: HammingIndex<Pdq>,
    phash: HammingIndex<u64>,
    dhash: HammingIndex<u64>,
    /// Slot → (entry, view index).
    slots: Vec<(u32, u16)>,
    /// Entry → its slots.
    entry_slots: Vec<Range<u32>>,
    by_uri: HashMap<String, usize>,
    loaded_until: String,
    /// Descriptor keys of the entries' local features (empty until loaded from a store).
    features: FeatureIndex,
}

impl Catalog {
    /// Builds the catalog over `entries`.
    pub fn new(entries: Vec<Entry>) -> Self {
        let views = || entries.iter().flat_map(|e| e.views.iter());
        let pdq = HammingIndex::build(views().map(|v| v.pdq.unwrap_or_default()).collect());
        let phash = HammingIndex::build(views().map(|v| v.phash).collect());
        let dhash = HammingIndex::build(views().map(|v| v.dhash).collect());
        let mut catalog = Catalog { pdq, phash, dhash, ..Catalog::default() };
        let mut slot = 0u32;
        for (pos, e) in entries.into_iter().enumerate() {
            let start = slot;
            for (i, v) in e.views.iter().enumerate() {
                if v.pdq.is_none() {
                    catalog.pdq.remove(slot);
                }
                catalog.slots.push((pos as u32, i as u16));
                slot += 1;
            }
            catalog.entry_slots.push(start..slot);
            catalog.by_uri.insert(e.uri.clone(), pos);
            catalog.entries.push(e);
        }
        catalog
    }

    /// Loads every object of the store, and the keys of its local features.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let (entries, until) = fetch(store, "").await?;
        let mut catalog = Catalog::new(entries);
        catalog.loaded_until = until;
        let all: Vec<usize> = (0..catalog.entries.len()).collect();
        catalog.index_features(store, &all).await?;
        Ok(catalog)
    }

    /// Adds the stored local features of these entries to the feature index, a batch at a time.
    async fn index_features(&mut self, store: &Store, positions: &[usize]) -> Result<(), StoreError> {
        for batch in positions.chunks(PAIRS_PER_BATCH) {
            let ids: Vec<i64> = batch.iter().map(|&p| self.entries[p].id).collect();
            let found = features_of(store, &ids).await?;
            for &p in batch {
                if let Some(f) = found.get(&self.entries[p].id) {
                    self.add_features(p, f);
                }
            }
        }
        Ok(())
    }

    /// Indexes one entry's local features, so that queries sharing many descriptors with it
    /// find it as a candidate (also for catalogs built without a store, as in tests).
    pub fn add_features(&mut self, pos: usize, f: &ObjectFeatures) {
        if f.direct.len() >= verify::MIN_KEYPOINTS {
            self.features.insert(pos, &f.direct, &f.mirrored);
        }
    }

    /// Adds the objects written to the store since the last load or refresh (new objects, and
    /// objects whose bytes changed, which replace their old entry); returns how many. For a
    /// catalog kept in memory while scans keep writing.
    pub async fn refresh(&mut self, store: &Store) -> Result<usize, StoreError> {
        let (entries, until) = fetch(store, &self.loaded_until).await?;
        let mut added = Vec::new();
        for e in entries {
            // Rows near the cursor come again (so that none committed late is missed);
            // unchanged ones are skipped.
            if self.by_uri(&e.uri).is_some_and(|p| self.entries[p] == e) {
                continue;
            }
            self.insert(e);
            added.push(self.entries.len() - 1);
        }
        self.index_features(store, &added).await?;
        self.loaded_until = until;
        Ok(added.len())
    }

    /// Adds one object (replacing an entry with the same uri).
    pub fn insert(&mut self, e: Entry) {
        if let Some(&old) = self.by_uri.get(&e.uri) {
            for slot in self.entry_slots[old].clone() {
                self.pdq.remove(slot);
                self.phash.remove(slot);
                self.dhash.remove(slot);
            }
        }
        let pos = self.entries.len();
        let start = self.slots.len() as u32;
        for (i, v) in e.views.iter().enumerate() {
            let slot = self.pdq.insert(v.pdq.unwrap_or_default());
            if v.pdq.is_none() {
                self.pdq.remove(slot);
            }
            self.phash.insert(v.phash);
            self.dhash.insert(v.dhash);
            self.slots.push((pos as u32, i as u16));
        }
        self.entry_slots.push(start..self.slots.len() as u32);
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

    /// Whether the entry at `pos` is its uri's current one (not replaced by a later scan).
    pub fn is_current(&self, pos: usize) -> bool {
        self.by_uri.get(&self.entries[pos].uri) == Some(&pos)
    }

    /// Positions of the current entry of every uri (replaced entries left out), ascending.
    fn current(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.by_uri.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// Every current object whose picture, or a view of it, hashes near one of the query's
    /// views under the rule (nearest first, at most [`MAX_CANDIDATES`]), then the objects that
    /// share the most descriptors with the query's local features, when it has them ([`feature_index`]).
    /// Undecided: see [`Match::decide`].
    pub fn candidates(&self, q: &Query, rule: &Rule) -> Vec<Match> {
        let keys = q.features.as_ref().filter(|f| f.direct.len() >= verify::MIN_KEYPOINTS).map(|f| feature_index::keys_of(&f.direct));
        self.candidates_with(q, rule, keys.as_deref(), None)
    }

    /// [`Catalog::candidates`] with the query's descriptor keys given (a stored entry's), and
    /// the query's own entry left out of the feature candidates.
    fn candidates_with(&self, q: &Query, rule: &Rule, keys: Option<&[feature_index::Keys]>, own: Option<usize>) -> Vec<Match> {
        // entry → (matched_by, views)
        let mut hits: BTreeMap<usize, (&'static str, String)> = BTreeMap::new();
        let use_pdq = matches!(rule.kind, HashKind::Default | HashKind::Pdq);
        for qv in &q.views {
            let mut note = |slot: u32, name: &'static str| {
                let (entry, view) = self.slots[slot as usize];
                let label = || format!("{}~{}", qv.view, self.entries[entry as usize].views[view as usize].view);
                hits.entry(entry as usize).or_insert_with(|| (name, label()));
            };
            if use_pdq {
                for v in &qv.pdq {
                    for (slot, _) in self.pdq.search(v, rule.radius) {
                        note(slot, "pdq");
                    }
                }
            }
            let sixty_four = match rule.kind {
                HashKind::Default => qv.phash.map(|h| (&self.phash, h, DEFAULT_PHASH_RADIUS, "phash")),
                HashKind::Phash => qv.phash.map(|h| (&self.phash, h, rule.radius, "phash")),
                HashKind::Dhash => qv.dhash.map(|h| (&self.dhash, h, rule.radius, "dhash")),
                HashKind::Pdq => None,
            };
            if let Some((index, h, radius, name)) = sixty_four {
                for (slot, _) in index.search(&h, radius) {
                    note(slot, name);
                }
            }
        }
        let mut out: Vec<Match> = hits
            .into_iter()
            .filter(|(entry, _)| self.is_current(*entry))
            .map(|(entry, (matched_by, views))| self.describe(q, entry, matched_by, views))
            .collect();
        // Nearest first, on PDQ's 256-bit scale.
        let key = |m: &Match| match m.matched_by {
            "pdq" => m.pdq_distance.unwrap_or(256),
            "phash" => m.phash_distance.unwrap_or(64) * 4,
            _ => m.dhash_distance.unwrap_or(64) * 4,
        };
        out.sort_by_key(|m| (key(m), m.entry));
        out.truncate(MAX_CANDIDATES);
        if let Some(keys) = keys {
            for (entry, votes) in self.features.candidates(keys, own) {
                if !self.is_current(entry) {
                    continue;
                }
                match out.iter_mut().find(|m| m.entry == entry) {
                    Some(m) => m.feature_votes = Some(votes),
                    None => {
                        let mut m = self.describe(q, entry, "features", "features".into());
                        m.feature_votes = Some(votes);
                        out.push(m);
                    }
                }
            }
        }
        out
    }

    /// The hash evidence between a query and one entry.
    fn describe(&self, q: &Query, entry: usize, matched_by: &'static str, views: String) -> Match {
        let e = &self.entries[entry];
        let pdq_between = |qv: &QueryView, v: &ViewHash| v.pdq.filter(|_| !qv.pdq.is_empty()).map(|p| qv.pdq.iter().map(|x| x.distance(&p)).min().unwrap_or(256));
        let pdq_distance = q.views.iter().flat_map(|qv| e.views.iter().filter_map(move |v| pdq_between(qv, v))).min();
        let whole_pdq_distance = q.views.first().and_then(|qv| pdq_between(qv, e.whole()));
        let phash_distance = q.views.iter().flat_map(|qv| e.views.iter().filter_map(move |v| qv.phash.map(|h| (h ^ v.phash).count_ones()))).min();
        let dhash_distance = q.views.first().and_then(|qv| qv.dhash).map(|h| (h ^ e.whole().dhash).count_ones());
        let low_quality = q.views.first().is_some_and(|qv| qv.low_quality) || e.whole().pdq_unreliable();
        Match {
            entry,
            pdq_distance,
            whole_pdq_distance,
            phash_distance,
            dhash_distance,
            matched_by,
            feature_votes: None,
            views,
            low_quality,
            decided_by: DecidedBy::Candidate,
            matched: false,
            evidence: None,
        }
    }

    /// Every pair of current objects (`a < b`) that are candidates of each other under the rule.
    /// A pair counts when either side is among the other's [`MAX_CANDIDATES`] nearest.
    /// Each object's search is independent, so a block of objects is shared among the cores
    /// and merged in object order: the result is the one-thread result.
    pub fn candidate_pairs(&self, rule: &Rule) -> Vec<(usize, usize, Match)> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut out: BTreeMap<(usize, usize), Match> = BTreeMap::new();
        for block in self.current().chunks(CANDIDATE_BLOCK) {
            let share = block.len().div_ceil(threads).max(1);
            let found: Vec<Vec<(usize, Vec<Match>)>> = std::thread::scope(|scope| {
                let handles: Vec<_> = block
                    .chunks(share)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter().map(|&p| (p, self.candidates_with(&Query::from_entry(&self.entries[p]), rule, self.features.entry_keys(p), Some(p)))).collect()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("candidate search thread panicked")).collect()
            });
            for (p, matches) in found.into_iter().flatten() {
                for m in matches.into_iter().filter(|m| m.entry != p) {
                    out.entry((p.min(m.entry), p.max(m.entry))).or_insert_with(|| Match { entry: p.max(m.entry), ..m });
                }
            }
        }
        out.into_iter().map(|((a, b), m)| (a, b, m)).collect()
    }

    /// Groups of objects joined by `pairs` (matches) that span at least `min_sellers` sellers,
    /// largest first.
    pub fn clusters(&self, pairs: &[(usize, usize)], min_sellers: usize) -> Vec<Cluster> {
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
        for &(a, b) in pairs {
            if !parent.contains_key(&a) || !parent.contains_key(&b) {
                continue;
            }
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
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

/// Objects whose candidates are searched at once by [`Catalog::candidate_pairs`]: bounds the
/// undeduplicated candidates held in memory.
const CANDIDATE_BLOCK: usize = 4096;

/// Candidates verified per batch of [`verify_pairs`]: bounds the features held in memory.
const PAIRS_PER_BATCH: usize = 4096;

/// Every pair of current objects that shows the same photo: the candidates of
/// [`Catalog::candidate_pairs`], each decided ([`Match::decide`]) with the local features
/// fetched from the store, batch by batch.
pub async fn verified_pairs(catalog: &Catalog, store: &Store, rule: &Rule, p: &Params) -> Result<Vec<(usize, usize, Match)>, StoreError> {
    let started = std::time::Instant::now();
    let candidates = catalog.candidate_pairs(rule);
    let hashed = started.elapsed();
    let out = verify_pairs(catalog, store, &candidates, p).await?;
    tracing::info!(
        objects = catalog.entries.len(),
        candidates = candidates.len(),
        matches = out.len(),
        "candidate pairs in {:.1} s, verified in {:.1} s",
        hashed.as_secs_f64(),
        (started.elapsed() - hashed).as_secs_f64()
    );
    Ok(out)
}

/// The candidate pairs that are matches, each decided ([`Match::decide`]) with the local
/// features fetched from the store, batch by batch, on every core.
pub async fn verify_pairs(catalog: &Catalog, store: &Store, candidates: &[(usize, usize, Match)], p: &Params) -> Result<Vec<(usize, usize, Match)>, StoreError> {
    let mut out = Vec::new();
    for batch in candidates.chunks(PAIRS_PER_BATCH) {
        let mut ids: Vec<i64> = batch.iter().flat_map(|(a, b, _)| [catalog.entries[*a].id, catalog.entries[*b].id]).collect();
        ids.sort_unstable();
        ids.dedup();
        let features = features_of(store, &ids).await?;
        let decide = |part: &[(usize, usize, Match)]| -> Vec<(usize, usize, Match)> {
            part.iter()
                .filter_map(|(a, b, m)| {
                    let mut m = m.clone();
                    m.decide(features.get(&catalog.entries[*a].id), features.get(&catalog.entries[*b].id), p);
                    m.matched.then_some((*a, *b, m))
                })
                .collect()
        };
        // Verification is CPU-bound and independent per pair: one share of the batch per core.
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let share = batch.len().div_ceil(threads).max(1);
        let decided: Vec<Vec<(usize, usize, Match)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch.chunks(share).map(|part| scope.spawn(move || decide(part))).collect();
            handles.into_iter().map(|h| h.join().expect("verification thread panicked")).collect()
        });
        out.extend(decided.into_iter().flatten());
    }
    Ok(out)
}

/// Groups of objects showing the same photo (verified matches) under at least `min_sellers`
/// sellers, largest first.
pub async fn clusters(catalog: &Catalog, store: &Store, rule: &Rule, min_sellers: usize) -> Result<Vec<Cluster>, StoreError> {
    let pairs: Vec<(usize, usize)> = verified_pairs(catalog, store, rule, &Params::default()).await?.into_iter().map(|(a, b, _)| (a, b)).collect();
    Ok(catalog.clusters(&pairs, min_sellers))
}

/// The candidates of a query, each decided with its local features (the query's own, and the
/// stored objects' fetched from the store), matches first, each group nearest first.
pub async fn matches(catalog: &Catalog, store: &Store, q: &Query, rule: &Rule, p: &Params) -> Result<Vec<Match>, StoreError> {
    let mut found = catalog.candidates(q, rule);
    let ids: Vec<i64> = found.iter().map(|m| catalog.entries[m.entry].id).collect();
    let features = features_of(store, &ids).await?;
    for m in &mut found {
        m.decide(q.features.as_deref(), features.get(&catalog.entries[m.entry].id), p);
    }
    found.sort_by_key(|m| !m.matched);
    Ok(found)
}

/// A query for a photo in hand: its hashes with PDQ's rotations and mirror images, its views,
/// and its local features (`None`, logged, when OpenCV fails).
pub fn query_from_image(rgb: &image::RgbImage) -> Query {
    let mut hasher = crate::hash::PerceptualHasher::new();
    let (hashes, variants) = hasher.hash_query(rgb);
    let (_, views, photo) = hasher.hash_with_views(rgb);
    let features = features::FeatureExtractor::new()
        .and_then(|mut x| x.extract(&photo))
        .map_err(|e| tracing::warn!("no local features for the query: {e}"))
        .ok();
    Query::from_image(&hashes, variants, &views, features.map(Arc::new))
}

/// One match as `tusk match --json` and the HTTP API report it: the stored object, the
/// decision and its evidence.
pub fn match_json(catalog: &Catalog, query: &str, m: &Match) -> serde_json::Value {
    let e = &catalog.entries[m.entry];
    serde_json::json!({
        "query": query,
        "uri": e.uri,
        "seller_id": e.seller_id,
        "listing_id": e.listing_id,
        "platform": e.platform,
        "matched": m.matched,
        "decided_by": m.decided_by,
        "matched_by": m.matched_by,
        "feature_votes": m.feature_votes,
        "views": m.views,
        "pdq_distance": m.pdq_distance,
        "whole_pdq_distance": m.whole_pdq_distance,
        "phash_distance": m.phash_distance,
        "dhash_distance": m.dhash_distance,
        "pdq_quality": e.pdq_quality,
        "low_quality": m.low_quality,
        "evidence": m.evidence,
    })
}

/// A cluster as `tusk clusters --json` and the HTTP API report it.
pub fn cluster_json(catalog: &Catalog, c: &Cluster) -> serde_json::Value {
    serde_json::json!({"objects": c.members.len(), "sellers": c.sellers, "members": c.members.iter().map(|&p| &catalog.entries[p]).collect::<Vec<_>>()})
}

/// The local features of a stored object, for a query made from it.
pub async fn entry_features(catalog: &Catalog, store: &Store, pos: usize) -> Result<Option<Arc<ObjectFeatures>>, StoreError> {
    let id = catalog.entries[pos].id;
    Ok(features_of(store, &[id]).await?.remove(&id).map(Arc::new))
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

/// The stored local features of these objects, parsed; a damaged blob is logged and left
/// out, which leaves its object to the strict hash rule.
async fn features_of(store: &Store, ids: &[i64]) -> Result<HashMap<i64, ObjectFeatures>, StoreError> {
    let blobs = store.features(ids).await?;
    let mut out = HashMap::with_capacity(blobs.len());
    for (id, data) in blobs {
        match ObjectFeatures::from_bytes(&data) {
            Ok(f) => {
                out.insert(id, f);
            }
            Err(e) => tracing::warn!(object_id = id, "{e}; the object is verified by the strict hash rule only"),
        }
    }
    Ok(out)
}

/// Objects written since `cursor` ("" for all) as catalog entries, and the next cursor.
async fn fetch(store: &Store, cursor: &str) -> Result<(Vec<Entry>, String), StoreError> {
    let (rows, next) = store.objects_since(cursor).await?;
    let entries = rows
        .into_iter()
        .map(|ObjectRow { id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views }| {
            let pdq_quality = pdq_quality.map(|q| q.clamp(0, 100) as u8);
            let mut all = vec![ViewHash {
                view: "whole".into(),
                phash: u64::from_str_radix(&phash, 16).unwrap_or(0),
                dhash: u64::from_str_radix(&dhash, 16).unwrap_or(0),
                pdq: pdq.as_deref().and_then(Pdq::from_hex),
                pdq_quality,
            }];
            all.extend(views.as_deref().map(parse_views).unwrap_or_default());
            Entry { id, uri, seller_id, listing_id, platform, pdq_quality, views: all }
        })
        .collect();
    Ok((entries, next))
}

/// The `views` column: a JSON array of [`View`]s.
fn parse_views(text: &str) -> Vec<ViewHash> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| {
            let hex64 = |k: &str| v.get(k)?.as_str().and_then(|s| u64::from_str_radix(s, 16).ok());
            Some(ViewHash {
                view: v.get("view")?.as_str()?.to_string(),
                phash: hex64("phash")?,
                dhash: hex64("dhash")?,
                pdq: v.get("pdq").and_then(|p| p.as_str()).and_then(Pdq::from_hex),
                pdq_quality: v.get("pdq_quality").and_then(|q| q.as_u64()).map(|q| q.min(100) as u8),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uri: &str, seller: &str, phash: u64, pdq: Pdq) -> Entry {
        Entry {
            id: 0,
            uri: uri.into(),
            seller_id: Some(seller.into()),
            listing_id: None,
            platform: None,
            pdq_quality: Some(100),
            views: vec![ViewHash { view: "whole".into(), phash, dhash: phash.rotate_left(7), pdq: Some(pdq), pdq_quality: Some(100) }],
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
    fn candidate_pairs_on_many_threads_are_the_one_thread_pairs() {
        // More objects than one block, near copies across the blocks' and threads' borders.
        let n = CANDIDATE_BLOCK + 900;
        let entries: Vec<Entry> = (0..n)
            .map(|i| {
                let base = (i % 1_700) as u64;
                let mut h = pdq(base);
                h.0[(i / 1_700) % 4] ^= 0b1011 << (i % 50);
                entry(&format!("o{i}"), &format!("s{}", i % 7), base.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i / 1_700) as u64, h)
            })
            .collect();
        let catalog = Catalog::new(entries);
        let rule = Rule::new(HashKind::Default, None);
        let mut one: BTreeMap<(usize, usize), Match> = BTreeMap::new();
        for p in catalog.current() {
            for m in catalog.candidates(&Query::from_entry(&catalog.entries[p]), &rule) {
                if m.entry != p {
                    one.entry((p.min(m.entry), p.max(m.entry))).or_insert_with(|| Match { entry: p.max(m.entry), ..m });
                }
            }
        }
        let many = catalog.candidate_pairs(&rule);
        assert!(many.len() >= 1_700, "{} pairs", many.len());
        let key = |(a, b, m): &(usize, usize, Match)| (*a, *b, m.entry, m.matched_by, m.views.clone(), m.pdq_distance, m.phash_distance);
        let one: Vec<_> = one.into_iter().map(|((a, b), m)| key(&(a, b, m))).collect();
        assert_eq!(many.iter().map(key).collect::<Vec<_>>(), one);
    }

    /// Candidates decided without features: the strict hash rule alone.
    fn strict_pairs(catalog: &Catalog, rule: &Rule) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (a, b, mut m) in catalog.candidate_pairs(rule) {
            m.decide(None, None, &Params::default());
            assert_eq!(m.decided_by, DecidedBy::StrictHash);
            if m.matched {
                out.push((a, b));
            }
        }
        out
    }

    #[test]
    fn clusters_and_links_join_sellers_who_share_a_photo() {
        let a = pdq(1);
        let mut a2 = a;
        a2.0[0] ^= 0xff; // 8 bits off: a re-post
        let mut far = a;
        far.0[1] ^= 0x00ff_ffff_ffff; // 40 bits off: a candidate the strict rule rejects
        let catalog = Catalog::new(vec![
            entry("x/1", "ana", 0x1111_0000_ffff_0000, a),
            entry("x/2", "zed", 0x9999_0000_ffff_0000, a2),
            entry("x/3", "ana", 0x0f0f_0f0f_0f0f_0f0f, pdq(2)),
            entry("x/4", "bo", 0xf0f0_f0f0_f0f0_f0f0, pdq(3)),
            entry("x/5", "ana", 0x1111_0000_ffff_0000, a), // same seller re-using: one seller only
            entry("x/6", "cy", 0x7777_7777_0000_0000, far),
        ]);
        let found = catalog.candidates(&Query::from_entry(&catalog.entries[0]), &Rule::new(HashKind::Pdq, None));
        let uris: Vec<&str> = found.iter().map(|m| catalog.entries[m.entry].uri.as_str()).collect();
        assert_eq!(uris, ["x/1", "x/5", "x/2", "x/6"]);
        assert_eq!(found[2].pdq_distance, Some(8));
        assert_eq!(found[2].views, "whole~whole");
        assert!(found.iter().all(|m| m.decided_by == DecidedBy::Candidate && !m.matched));
        let rule = Rule::new(HashKind::Default, None);
        let pairs = strict_pairs(&catalog, &rule);
        assert_eq!(pairs, vec![(0, 1), (0, 4), (1, 4)]);
        let clusters = catalog.clusters(&pairs, 2);
        assert_eq!(clusters, vec![Cluster { members: vec![0, 1, 4], sellers: vec!["ana".into(), "zed".into()] }]);
        let l = links(&catalog, &clusters);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].source.as_str(), l[0].target.as_str(), l[0].weight), ("ana", "zed", 1));
        assert_eq!(l[0].evidence, vec![("x/1".to_string(), "x/2".to_string())]);
    }

    #[test]
    fn views_make_candidates_and_low_quality_never_matches() {
        let photo = pdq(4);
        let mut screenshot = entry("shot", "s2", 5, pdq(5));
        screenshot.views.push(ViewHash { view: "photo".into(), phash: 6, dhash: 6, pdq: Some(photo), pdq_quality: Some(90) });
        let mut catalog = Catalog::new(vec![entry("orig", "s1", u64::MAX, photo), screenshot]);
        let found = catalog.candidates(&Query::from_entry(&catalog.entries[0]), &Rule::new(HashKind::Pdq, None));
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].views.as_str(), found[1].pdq_distance), ("whole~photo", Some(0)));
        assert!(found[1].whole_pdq_distance.unwrap() > STRICT_PDQ_RADIUS);
        // The strict rule looks at whole pictures only: a view alone needs features to match.
        assert!(strict_pairs(&catalog, &Rule::new(HashKind::Pdq, None)).is_empty());

        let flat = pdq(9);
        catalog.insert(entry("a", "s3", 1, flat));
        catalog.insert(entry("b", "s4", u64::MAX - 1, flat));
        let (a, b) = (catalog.by_uri("a").unwrap(), catalog.by_uri("b").unwrap());
        catalog.entries[a].views[0].pdq_quality = Some(10);
        catalog.entries[b].views[0].pdq_quality = Some(10);
        let q = Query::from_entry(&catalog.entries[a]);
        assert!(catalog.candidates(&q, &Rule::new(HashKind::Pdq, None)).iter().all(|m| m.low_quality));
        assert!(!strict_pairs(&catalog, &Rule::new(HashKind::Pdq, None)).contains(&(a, b)));
        // "b" is re-hashed with a different picture: its old hash no longer matches.
        catalog.insert(entry("b", "s4", u64::MAX - 1, pdq(10)));
        let hits = catalog.candidates(&q, &Rule::new(HashKind::Pdq, Some(31)));
        assert_eq!(hits.len(), 1);
        assert_eq!(catalog.entries[hits[0].entry].uri, "a");
    }

    #[test]
    fn hex_queries_name_their_hash() {
        assert_eq!(Query::from_hex(&"ab".repeat(32), HashKind::Default).unwrap().views[0].pdq.len(), 8);
        assert_eq!(Query::from_hex("00000000000000ff", HashKind::Dhash).unwrap().views[0].dhash, Some(255));
        assert!(Query::from_hex("xyz", HashKind::Default).is_err());
    }

    #[test]
    fn stored_views_parse_back() {
        let h = Hashes { phash: 0xab, dhash: 0xcd, pdq: pdq(3), pdq_quality: 77 };
        let v = View { view: "photo".into(), rect: [1, 2, 3, 4], hashes: h };
        let parsed = parse_views(&serde_json::to_string(&vec![v]).unwrap());
        assert_eq!(parsed, vec![ViewHash { view: "photo".into(), phash: 0xab, dhash: 0xcd, pdq: Some(pdq(3)), pdq_quality: Some(77) }]);
    }
}
