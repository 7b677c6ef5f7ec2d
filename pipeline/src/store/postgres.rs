//! The PostgreSQL store (sqlx, migrations in `migrations/postgres`): one database shared by
//! many workers on many machines. Concurrent writers of the same object meet in `ON CONFLICT`
//! upserts; each batch takes its row locks in uri order, so two batches never deadlock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::{decision_from, queue_row_from, Decision, DecisionFilter, DecisionRow, NewDecision, QueueFilter, QueueRow, QueueSqlRow, DECISION_COLUMNS};
use super::{record_from, RecordRow, TokenRow, model_task_and_thresholds, Backend, ObjectRow, RunCounts, RunStatus, StoreError, StoredBox, HASH_VERSION};
use crate::infer::ModelManifest;
use crate::record::Record;

/// How far back `objects_since` reaches before the newest row it returned: a row is stamped
/// when written but seen when its transaction commits, and a batch (at most a few hundred
/// milliseconds between its first write and its commit) commits well within this. Small, since
/// `tusk serve` refreshes its catalog on every listing and re-reads this window each time.
const CURSOR_OVERLAP_US: i64 = 10_000_000;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to an existing database and brings its schema up to date (migrations take an
    /// advisory lock, so workers starting together migrate once).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shown = super::Db::Postgres(url.to_string()).to_string();
        let open_err = |source| StoreError::Open { path: shown.clone(), source };
        let opts: PgConnectOptions = url.parse().map_err(open_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            // Connections broken by a server restart are found and replaced before use.
            .test_before_acquire(true)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for the job queue and for queries outside the pipeline (tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes a batch inside a transaction the caller owns (the job queue commits results and
    /// completes their jobs together).
    pub async fn write_in(tx: &mut Transaction<'_, Postgres>, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>) -> Result<(), StoreError> {
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by(|a, b| a.uri.cmp(&b.uri));
        for r in sorted {
            match &r.failure {
                Some(_) => write_failure(tx, run_id, r).await?,
                None => write_result(tx, run_id, r, model_ids).await?,
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for PgStore {
    async fn begin_run(&self, source: &str, models: &[ModelManifest]) -> Result<(i64, Vec<i64>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let run_id: i64 = sqlx::query_scalar("INSERT INTO runs (tusk_version, source, status) VALUES ($1, $2, 'running') RETURNING id")
            .bind(env!("CARGO_PKG_VERSION"))
            .bind(source)
            .fetch_one(&mut *tx)
            .await?;
        let mut ids = Vec::with_capacity(models.len());
        for m in models {
            let (task, thresholds) = model_task_and_thresholds(m);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO models (name, version, sha256, task, thresholds) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name, version, sha256) DO UPDATE SET thresholds = excluded.thresholds
                 RETURNING id",
            )
            .bind(&m.name)
            .bind(&m.version)
            .bind(m.sha256.to_ascii_lowercase())
            .bind(task)
            .bind(thresholds)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO run_models (run_id, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok((run_id, ids))
    }

    async fn finish_run(&self, run_id: i64, status: RunStatus, counts: RunCounts) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET status = $1, processed = $2, skipped = $3, failed = $4, finished_at = clock_timestamp() WHERE id = $5")
            .bind(status.as_str())
            .bind(counts.processed as i64)
            .bind(counts.skipped as i64)
            .bind(counts.failed as i64)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn is_done(&self, uri: &str, fingerprint: &str, model_ids: &[i64]) -> Result<bool, StoreError> {
        let done: Option<Vec<i64>> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT array_agg(r.model_id) FROM results r
                              WHERE r.object_id = o.id AND r.fingerprint = o.fingerprint), '{}')
             FROM objects o WHERE o.uri = $1 AND o.fingerprint = $2 AND o.hash_version = $3",
        )
        .bind(uri)
        .bind(fingerprint)
        .bind(HASH_VERSION)
        .fetch_optional(&self.pool)
        .await?;
        if done.is_some_and(|done| model_ids.iter().all(|m| done.contains(m))) {
            return Ok(true);
        }
        let permanent: Option<i32> = sqlx::query_scalar("SELECT 1 FROM failures WHERE uri = $1 AND fingerprint = $2 AND NOT retryable")
            .bind(uri)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(permanent.is_some())
    }

    async fn write(&self, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::write_in(&mut tx, run_id, records, model_ids).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn scores(&self, model: &str, version: &str, sha256: &str) -> Result<HashMap<String, HashMap<String, f32>>, StoreError> {
        let rows: Vec<(String, String, f64)> = sqlx::query_as(
            "SELECT o.uri, s.label, s.score FROM scores s
             JOIN objects o ON o.id = s.object_id AND o.fingerprint = s.fingerprint
             JOIN models m ON m.id = s.model_id
             WHERE m.name = $1 AND m.version = $2 AND m.sha256 = $3",
        )
        .bind(model)
        .bind(version)
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, HashMap<String, f32>> = HashMap::new();
        for (uri, label, score) in rows {
            out.entry(uri).or_default().insert(label, score as f32);
        }
        Ok(out)
    }

    async fn boxes(&self, model: &str, version: &str, sha256: &str) -> Result<HashMap<String, Vec<StoredBox>>, StoreError> {
        type Row = (String, String, f64, f64, f64, f64, f64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT o.uri, d.label, d.score, d.x0, d.y0, d.x1, d.y1 FROM detections d
             JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint
             JOIN models m ON m.id = d.model_id
             WHERE m.name = $1 AND m.version = $2 AND m.sha256 = $3 AND d.x0 IS NOT NULL",
        )
        .bind(model)
        .bind(version)
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Vec<StoredBox>> = HashMap::new();
        for (uri, label, score, x0, y0, x1, y1) in rows {
            out.entry(uri).or_default().push((label, score as f32, [x0, y0, x1, y1].map(|v| v as f32)));
        }
        Ok(out)
    }

    async fn features(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT f.object_id, f.data FROM features f JOIN objects o ON o.id = f.object_id AND o.fingerprint = f.fingerprint
             WHERE f.object_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn failures(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT uri, stage || '/' || reason FROM failures").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    async fn objects_since(&self, cursor: &str) -> Result<(Vec<ObjectRow>, String), StoreError> {
        type Row = (i64, String, Option<String>, Option<String>, Option<String>, String, String, Option<String>, Option<i64>, Option<String>, i64);
        let since: Option<i64> = cursor.parse().ok();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views,
                    (extract(epoch FROM updated_at) * 1000000)::bigint
             FROM objects WHERE $1::bigint IS NULL OR updated_at >= to_timestamp($1::bigint / 1000000.0)
             ORDER BY updated_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut newest = None;
        let rows = rows
            .into_iter()
            .map(|(id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views, us)| {
                newest = Some(us);
                ObjectRow { id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views }
            })
            .collect();
        let next = match newest {
            Some(us) => (us - CURSOR_OVERLAP_US).max(since.unwrap_or(i64::MIN)).to_string(),
            None => cursor.to_string(),
        };
        Ok((rows, next))
    }

    async fn object_id(&self, uri: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM objects WHERE uri = $1").bind(uri).fetch_optional(&self.pool).await?)
    }

    async fn record(&self, id: i64) -> Result<Option<Record>, StoreError> {
        let row: Option<RecordRow> = sqlx::query_as(
            "SELECT uri, fingerprint, kind, listing_id, seller_id, platform, meta, width, height, phash, dhash, pdq, pdq_quality
             FROM objects WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scores: Vec<(String, String, f64)> = sqlx::query_as(
            "SELECT m.name, s.label, s.score FROM scores s JOIN objects o ON o.id = s.object_id AND o.fingerprint = s.fingerprint
             JOIN models m ON m.id = s.model_id WHERE s.object_id = $1 ORDER BY m.name, s.label",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        type Det = (String, String, f64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
        let detections: Vec<Det> = sqlx::query_as(
            "SELECT m.name, d.label, d.score, d.x0, d.y0, d.x1, d.y1 FROM detections d JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint
             JOIN models m ON m.id = d.model_id WHERE d.object_id = $1 AND d.flagged = TRUE ORDER BY d.score DESC, d.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let detections = detections
            .into_iter()
            .map(|(m, l, s, x0, y0, x1, y1)| (m, l, s, x0.zip(y0).zip(x1).zip(y1).map(|(((a, b), c), d)| [a, b, c, d])))
            .collect();
        Ok(Some(record_from(row, scores, detections)))
    }

    async fn add_token(&self, name: &str, role: &str, sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("INSERT INTO tokens (name, role, sha256) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(role)
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows: Vec<(String, String, String, String, bool)> =
            sqlx::query_as("SELECT name, role, sha256, CAST(created_at AS TEXT), revoked_at IS NOT NULL FROM tokens ORDER BY id").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(name, role, sha256, created_at, revoked)| TokenRow { name, role, sha256, created_at, revoked }).collect())
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tokens SET revoked_at = clock_timestamp() WHERE name = $1 AND revoked_at IS NULL").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_decision(&self, d: &NewDecision) -> Result<Option<Decision>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locks the object's row: decisions on one object are appended one at a time.
        let fingerprint: Option<String> = sqlx::query_scalar("SELECT fingerprint FROM objects WHERE id = $1 FOR UPDATE").bind(d.object_id).fetch_optional(&mut *tx).await?;
        let Some(fingerprint) = fingerprint else { return Ok(None) };
        if d.action == "undo" {
            let standing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM decisions x WHERE id = $1 AND object_id = $2 AND action <> 'undo'
                 AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = x.id)",
            )
            .bind(d.undoes)
            .bind(d.object_id)
            .fetch_optional(&mut *tx)
            .await?;
            if standing.is_none() {
                return Ok(None);
            }
        }
        let top: Option<(String, String, String, f64, String)> = sqlx::query_as(
            "SELECT m.name, m.version, d.label, d.score, m.thresholds FROM detections d JOIN models m ON m.id = d.model_id
             WHERE d.object_id = $1 AND d.fingerprint = $2 AND d.flagged ORDER BY d.score DESC, d.id LIMIT 1",
        )
        .bind(d.object_id)
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        let (model, version, label, score, thresholds) = top.map_or((None, None, None, None, None), |(m, v, l, s, t)| (Some(m), Some(v), Some(l), Some(s), Some(t)));
        let threshold = thresholds.as_deref().zip(label.as_deref()).and_then(|(t, l)| super::review::threshold_of(t, l));
        let row: Option<DecisionRow> = sqlx::query_as(&format!(
            "INSERT INTO decisions (object_id, fingerprint, action, reason, note, boxes, undoes, who, model, model_version, label, score, threshold)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING RETURNING {DECISION_COLUMNS}"
        ))
        .bind(d.object_id)
        .bind(&fingerprint)
        .bind(&d.action)
        .bind(&d.reason)
        .bind(&d.note)
        .bind(d.boxes.as_ref().map(|b| b.to_string()))
        .bind(d.undoes)
        .bind(&d.who)
        .bind(model)
        .bind(version)
        .bind(label)
        .bind(score)
        .bind(threshold)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(decision_from))
    }

    async fn decisions(&self, f: &DecisionFilter) -> Result<Vec<Decision>, StoreError> {
        let rows: Vec<DecisionRow> = sqlx::query_as(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE ($1::BIGINT IS NULL OR object_id = $1) AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(f.object_id)
        .bind(f.after.unwrap_or(0))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(decision_from).collect())
    }

    async fn review_queue(&self, f: &QueueFilter) -> Result<Vec<QueueRow>, StoreError> {
        let (sql, params) = super::review::queue_sql(f, super::review::Dialect::Postgres);
        let mut q = sqlx::query_as::<_, QueueSqlRow>(&sql);
        for p in params {
            q = q.bind(p);
        }
        let rows = q.bind(f.limit).bind(f.offset).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(queue_row_from).collect())
    }
}

async fn write_failure(tx: &mut Transaction<'_, Postgres>, run_id: i64, r: &Record) -> Result<(), StoreError> {
    let f = r.failure.as_ref().expect("caller checked");
    sqlx::query(
        "INSERT INTO failures (uri, fingerprint, stage, reason, message, retryable, run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (uri) DO UPDATE SET fingerprint = excluded.fingerprint, stage = excluded.stage,
             reason = excluded.reason, message = excluded.message, retryable = excluded.retryable,
             run_id = excluded.run_id, attempts = failures.attempts + 1, updated_at = clock_timestamp()",
    )
    .bind(&r.uri)
    .bind(&r.fingerprint)
    .bind(f.stage.as_str())
    .bind(&f.reason)
    .bind(&f.message)
    .bind(f.stage.retryable())
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_result(tx: &mut Transaction<'_, Postgres>, run_id: i64, r: &Record, model_ids: &BTreeMap<String, i64>) -> Result<(), StoreError> {
    let fingerprint = r.fingerprint.as_deref().unwrap_or("");
    let hashes = r.hashes.expect("a successful record has hashes");
    let object_id: i64 = sqlx::query_scalar(
        "INSERT INTO objects (uri, fingerprint, kind, listing_id, seller_id, platform, meta,
                              width, height, phash, dhash, pdq, pdq_quality, hash_version, run_id, views)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (uri) DO UPDATE SET fingerprint = excluded.fingerprint, kind = excluded.kind,
             listing_id = excluded.listing_id, seller_id = excluded.seller_id,
             platform = excluded.platform, meta = excluded.meta, width = excluded.width,
             height = excluded.height, phash = excluded.phash, dhash = excluded.dhash,
             pdq = excluded.pdq, pdq_quality = excluded.pdq_quality,
             hash_version = excluded.hash_version, run_id = excluded.run_id, views = excluded.views,
             updated_at = clock_timestamp()
         RETURNING id",
    )
    .bind(&r.uri)
    .bind(fingerprint)
    .bind(r.meta.kind.as_str())
    .bind(&r.meta.listing_id)
    .bind(&r.meta.seller_id)
    .bind(&r.meta.platform)
    .bind(r.meta.meta.as_ref().map(|m| m.to_string()))
    .bind(r.width.unwrap_or(0) as i64)
    .bind(r.height.unwrap_or(0) as i64)
    .bind(format!("{:016x}", hashes.phash))
    .bind(format!("{:016x}", hashes.dhash))
    .bind(hashes.pdq.to_hex())
    .bind(hashes.pdq_quality as i64)
    .bind(HASH_VERSION)
    .bind(run_id)
    .bind(serde_json::to_string(&r.views).unwrap_or_else(|_| "[]".into()))
    .fetch_one(&mut **tx)
    .await?;
    match &r.features {
        Some(f) => {
            sqlx::query(
                "INSERT INTO features (object_id, fingerprint, keypoints, data) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (object_id) DO UPDATE SET fingerprint = excluded.fingerprint,
                     keypoints = excluded.keypoints, data = excluded.data",
            )
            .bind(object_id)
            .bind(fingerprint)
            .bind(f.direct.len() as i64)
            .bind(f.to_bytes())
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM features WHERE object_id = $1").bind(object_id).execute(&mut **tx).await?;
        }
    }
    // Results for bytes that are no longer there describe nothing: drop them.
    for table in ["results", "scores", "detections"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE object_id = $1 AND fingerprint <> $2"))
            .bind(object_id)
            .bind(fingerprint)
            .execute(&mut **tx)
            .await?;
    }
    for (model, labels) in &r.scores {
        let Some(model_id) = model_ids.get(model).copied() else { continue };
        sqlx::query(
            "INSERT INTO results (object_id, fingerprint, model_id, run_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (object_id, fingerprint, model_id) DO UPDATE SET run_id = excluded.run_id",
        )
        .bind(object_id)
        .bind(fingerprint)
        .bind(model_id)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
        for (label, score) in labels {
            sqlx::query(
                "INSERT INTO scores (object_id, fingerprint, model_id, label, score) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (object_id, fingerprint, model_id, label) DO UPDATE SET score = excluded.score",
            )
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .bind(label)
            .bind(*score as f64)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("DELETE FROM detections WHERE object_id = $1 AND fingerprint = $2 AND model_id = $3")
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .execute(&mut **tx)
            .await?;
        for d in r.detections.iter().filter(|d| &d.model == model) {
            let b = d.bbox.map(|b| b.map(|v| v as f64));
            sqlx::query(
                "INSERT INTO detections (object_id, fingerprint, model_id, label, score, x0, y0, x1, y1, flagged)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .bind(&d.label)
            .bind(d.score as f64)
            .bind(b.map(|b| b[0]))
            .bind(b.map(|b| b[1]))
            .bind(b.map(|b| b[2]))
            .bind(b.map(|b| b[3]))
            .bind(d.flagged)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query("DELETE FROM failures WHERE uri = $1").bind(&r.uri).execute(&mut **tx).await?;
    Ok(())
}
