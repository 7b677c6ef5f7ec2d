//! The store of record: runs, models, objects with their hashes, per-model results, failures.
//! One trait ([`Backend`]) says what the pipeline, the reuse catalog and `tusk eval` need;
//! SQLite (the embedded default, [`sqlite`]) and PostgreSQL (shared by a fleet, [`postgres`])
//! implement it, each with its own migrations, and one conformance suite (`tests/store.rs`)
//! runs against both. Writes go in batches, one transaction each; unique keys make reruns
//! idempotent: exactly one result per object version and model.

pub mod postgres;
pub mod review;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::infer::ModelManifest;
use crate::record::Record;
pub use review::{Decision, DecisionFilter, NewDecision, QueueFilter, QueueOrder, QueueRow};

/// The hashing scheme objects are written with (1: pHash + dHash; 2: borders trimmed, PDQ
/// added; 3: views and local features for re-post verification; 4: no keypoints on lines of
/// text on a flat background; 5: keypoints spread over the photo; 6: views hashed on a copy
/// 512 px long). Objects of an older version are processed again.
pub const HASH_VERSION: i64 = 6;

/// Why the store failed; fatal for a run (results cannot be kept).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database, as [`Db`] displays it (no password).
        path: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// Migrations failed (often: a database from a newer tusk).
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// How a run ended, as stored in `runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every object was handled.
    Done,
    /// Stopped by Ctrl-C; a rerun resumes.
    Interrupted,
    /// Stopped by an error.
    Failed,
}

impl RunStatus {
    /// The text stored in `runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Done => "done",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}

/// Counts stored with a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Objects processed to a result.
    pub processed: u64,
    /// Objects skipped because they were already done.
    pub skipped: u64,
    /// Failure records written.
    pub failed: u64,
}

/// One stored object as the reuse catalog reads it: hashes in the stored text form.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRow {
    /// The store's object id.
    pub id: i64,
    /// Where the object came from.
    pub uri: String,
    /// The seller who posted it (listings).
    pub seller_id: Option<String>,
    /// The listing it belongs to.
    pub listing_id: Option<String>,
    /// The marketplace.
    pub platform: Option<String>,
    /// pHash, 16 hex digits.
    pub phash: String,
    /// dHash, 16 hex digits.
    pub dhash: String,
    /// PDQ, 64 hex digits (hash version ≥ 2).
    pub pdq: Option<String>,
    /// PDQ's quality, 0–100.
    pub pdq_quality: Option<i64>,
    /// The views' hashes, a JSON array (hash version 3).
    pub views: Option<String>,
}

/// An API token as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Unique name (who holds it).
    pub name: String,
    /// `station`, `crawler`, `analyst` or `admin`.
    pub role: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When it was made.
    pub created_at: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A model's box on one object: (label, score, `[x0, y0, x1, y1]`).
pub type StoredBox = (String, f32, [f32; 4]);

/// What every store does. Object-safe, so the pipeline holds an `Arc<dyn Backend>` ([`Store`])
/// and never knows which database is behind it.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Records a new run and the models it uses; returns the run id and each model's id (the
    /// same id for the same name, version and sha256, whichever run registered it first).
    async fn begin_run(&self, source: &str, models: &[ModelManifest]) -> Result<(i64, Vec<i64>), StoreError>;

    /// Marks a run finished with its counts.
    async fn finish_run(&self, run_id: i64, status: RunStatus, counts: RunCounts) -> Result<(), StoreError>;

    /// True when nothing is left to do for this object version: its hashes are of the current
    /// [`HASH_VERSION`] and every model in `model_ids` has a result, or decoding these exact
    /// bytes already failed (which would fail again).
    async fn is_done(&self, uri: &str, fingerprint: &str, model_ids: &[i64]) -> Result<bool, StoreError>;

    /// Writes a batch of records (results and failures) in one transaction. `model_ids` maps
    /// model names to ids. A result replaces what an object's older bytes had and clears its
    /// failure; writing the same record twice leaves one result.
    async fn write(&self, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>) -> Result<(), StoreError>;

    /// Current scores of one model version, per object uri and label (for `tusk eval`).
    async fn scores(&self, model: &str, version: &str, sha256: &str) -> Result<HashMap<String, HashMap<String, f32>>, StoreError>;

    /// A model's boxes per uri, weaker ones included when the scan kept them (`tusk eval`).
    async fn boxes(&self, model: &str, version: &str, sha256: &str) -> Result<HashMap<String, Vec<StoredBox>>, StoreError>;

    /// Stored local features (`ObjectFeatures::to_bytes`) of the given objects by id, for the
    /// objects' current bytes; objects without features are left out.
    async fn features(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>, StoreError>;

    /// Open failures as `stage/reason` per uri.
    async fn failures(&self) -> Result<HashMap<String, String>, StoreError>;

    /// Objects written since `cursor` ("" for all) in write order, and the cursor to pass
    /// next time. Rows near the cursor may come again (the catalog skips unchanged ones); none
    /// written after the previous call is missed.
    async fn objects_since(&self, cursor: &str) -> Result<(Vec<ObjectRow>, String), StoreError>;

    /// The id of the object stored under `uri`.
    async fn object_id(&self, uri: &str) -> Result<Option<i64>, StoreError>;

    /// One stored object as a record: metadata, size, hashes, every score and the flagged
    /// detections of its current bytes (no views or features).
    async fn record(&self, id: i64) -> Result<Option<Record>, StoreError>;

    /// Stores a new API token by its SHA-256; false when the name is taken.
    async fn add_token(&self, name: &str, role: &str, sha256: &str) -> Result<bool, StoreError>;

    /// Every API token, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError>;

    /// Revokes the token of this name; false when there is no such live token.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;

    /// Appends a reviewer's decision, stamped with the object's current bytes and its strongest
    /// flagged detection (model, version, label, score, threshold). `None` when there is no
    /// such object, or the undo names no standing decision of this object.
    async fn add_decision(&self, d: &NewDecision) -> Result<Option<Decision>, StoreError>;

    /// Stored decisions, oldest first.
    async fn decisions(&self, filter: &DecisionFilter) -> Result<Vec<Decision>, StoreError>;

    /// Flagged objects (current bytes), one row each with its strongest flagged detection and
    /// standing decision, filtered and ordered for review.
    async fn review_queue(&self, filter: &QueueFilter) -> Result<Vec<QueueRow>, StoreError>;
}

/// The columns of `decisions` read into a [`Decision`], in [`DecisionRow`]'s order.
const DECISION_COLUMNS: &str = "id, object_id, fingerprint, action, reason, note, boxes, undoes, who, CAST(at AS TEXT), model, model_version, label, score, threshold";

/// A `decisions` row as [`DECISION_COLUMNS`] reads it.
type DecisionRow = (i64, i64, String, String, Option<String>, Option<String>, Option<String>, Option<i64>, String, String, Option<String>, Option<String>, Option<String>, Option<f64>, Option<f64>);

fn decision_from(row: DecisionRow) -> Decision {
    let (id, object_id, fingerprint, action, reason, note, boxes, undoes, who, at, model, model_version, label, score, threshold) = row;
    let boxes = boxes.and_then(|b| serde_json::from_str(&b).ok());
    Decision { id, object_id, fingerprint, action, reason, note, boxes, undoes, who, at, model, model_version, label, score, threshold }
}

/// A `review_queue` row: object columns, the strongest flagged detection, thresholds JSON,
/// standing decision.
type QueueSqlRow = (i64, String, String, Option<String>, Option<String>, Option<String>, String, String, f64, String, String, String, Option<String>);

fn queue_row_from(row: QueueSqlRow) -> QueueRow {
    let (object_id, uri, kind, seller_id, platform, listing_id, updated_at, label, score, model, model_version, thresholds, decision) = row;
    let threshold = review::threshold_of(&thresholds, &label);
    QueueRow { object_id, uri, kind, seller_id, platform, listing_id, updated_at, label, score, model, model_version, threshold, decision }
}

/// The columns of `objects` that [`Backend::record`] reads, in this order.
type RecordRow = (String, String, String, Option<String>, Option<String>, Option<String>, Option<String>, i64, i64, String, String, Option<String>, Option<i64>);

/// Builds a record from the object's row, its scores (model, label, score) and its flagged
/// detections (model, label, score, box or none).
fn record_from(row: RecordRow, scores: Vec<(String, String, f64)>, detections: Vec<(String, String, f64, Option<[f64; 4]>)>) -> Record {
    let (uri, fingerprint, kind, listing_id, seller_id, platform, meta, width, height, phash, dhash, pdq, pdq_quality) = row;
    let meta = crate::source::ObjectMeta {
        kind: kind.parse().unwrap_or_default(),
        listing_id,
        seller_id,
        platform,
        meta: meta.and_then(|m| serde_json::from_str(&m).ok()),
    };
    let mut r = Record::new(uri, Some(fingerprint), meta);
    r.width = Some(width as u32);
    r.height = Some(height as u32);
    r.hashes = Some(crate::record::Hashes {
        phash: u64::from_str_radix(&phash, 16).unwrap_or(0),
        dhash: u64::from_str_radix(&dhash, 16).unwrap_or(0),
        pdq: pdq.as_deref().and_then(crate::hash::pdq::Pdq::from_hex).unwrap_or_default(),
        pdq_quality: pdq_quality.unwrap_or(0).clamp(0, 100) as u8,
    });
    for (model, label, score) in scores {
        r.scores.entry(model).or_default().insert(label, score as f32);
    }
    r.detections = detections
        .into_iter()
        .map(|(model, label, score, bbox)| crate::record::Detection { model, label, score: score as f32, bbox: bbox.map(|b| b.map(|v| v as f32)), flagged: true })
        .collect();
    r
}

/// A model's task and its thresholds (a JSON object label → threshold), as `models` stores them.
fn model_task_and_thresholds(m: &ModelManifest) -> (String, String) {
    let thresholds: BTreeMap<&str, f32> = m.labels.iter().map(|l| (l.name.as_str(), l.threshold)).collect();
    let task = serde_json::to_value(m.task).map(|v| v.as_str().unwrap_or("").to_string()).unwrap_or_default();
    (task, serde_json::to_string(&thresholds).unwrap_or_default())
}

/// Where the store lives, as `--db` gives it: a SQLite file path (or `sqlite://PATH`), or a
/// `postgres://user@host:port/db` url.
#[derive(Clone, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database (which must exist); the url as given.
    Postgres(String),
}

impl FromStr for Db {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Db::Postgres(s.to_string()));
        }
        let path = s.strip_prefix("sqlite://").unwrap_or(s);
        if path.is_empty() {
            return Err("empty database path".into());
        }
        if path.contains("://") {
            return Err(format!("{s}: a store is a SQLite file path or a postgres:// url"));
        }
        Ok(Db::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for Db {
    /// The path, or the url without its password (safe for logs and errors).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Db::Sqlite(p) => write!(f, "{}", p.display()),
            Db::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({self})")
    }
}

impl Db {
    /// False for a SQLite file that is not there yet (reading commands refuse to create one).
    pub fn exists(&self) -> bool {
        match self {
            Db::Sqlite(p) => p.exists(),
            Db::Postgres(_) => true,
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// A shared handle on whichever store `--db` named.
#[derive(Debug, Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (for SQLite: creating if needed) the store and brings its schema up to date.
    pub async fn open(db: &Db) -> Result<Self, StoreError> {
        Ok(match db {
            Db::Sqlite(path) => Store(Arc::new(sqlite::SqliteStore::open(path).await?)),
            Db::Postgres(url) => Store(Arc::new(postgres::PgStore::open(url).await?)),
        })
    }

    /// Wraps a backend (tests, embedders).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Store(backend)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_db_and_hides_passwords() {
        assert_eq!("tusk.db".parse::<Db>().unwrap(), Db::Sqlite("tusk.db".into()));
        assert_eq!("sqlite:///tmp/a.db".parse::<Db>().unwrap(), Db::Sqlite("/tmp/a.db".into()));
        let pg: Db = "postgres://tusk:s3cret@127.0.0.1:5432/tusk".parse().unwrap();
        assert!(matches!(pg, Db::Postgres(_)));
        assert_eq!(pg.to_string(), "postgres://tusk:***@127.0.0.1:5432/tusk");
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert_eq!("postgresql://u@h/d".parse::<Db>().unwrap().to_string(), "postgresql://u@h/d");
        assert!("mysql://x".parse::<Db>().is_err());
        assert!("".parse::<Db>().is_err());
    }
}
