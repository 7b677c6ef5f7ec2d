//! The SQLite store (sqlx, migrations in `migrations/sqlite`): the embedded default, one file,
//! one machine. WAL journal, so readers (`tusk match`) run beside a scan.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::{decision_from, queue_row_from, Decision, DecisionFilter, DecisionRow, NewDecision, QueueFilter, QueueRow, QueueSqlRow, DECISION_COLUMNS};
use super::{record_from, RecordRow, TokenRow, model_task_and_thresholds, Backend, ObjectRow, RunCounts, RunStatus, StoreError, StoredBox, HASH_VERSION};
use crate::infer::ModelManifest;
use crate::record::Record;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for queries outside the pipeline (tests, reports).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    async fn scores(&self, model: &str, version: &str, sha256: &str) -> Result<HashMap<String, HashMap<String, f32>>, StoreError> {
        let rows: Vec<(String, String, f64)> = sqlx::query_as(
            "SELECT o.uri, s.label, s.score FROM scores s \
             JOIN objects o ON o.id = s.object_id AND o.fingerprint = s.fingerprint \
             JOIN models m ON m.id = s.model_id \
             WHERE m.name = ? AND m.version = ? AND m.sha256 = ?",
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
            "SELECT o.uri, d.label, d.score, d.x0, d.y0, d.x1, d.y1 FROM detections d \
             JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint \
             JOIN models m ON m.id = d.model_id \
             WHERE m.name = ? AND m.version = ? AND m.sha256 = ? AND d.x0 IS NOT NULL",
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
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT f.object_id, f.data FROM features f JOIN objects o ON o.id = f.object_id AND o.fingerprint = f.fingerprint WHERE f.object_id IN ({marks})"
            );
            let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    async fn objects_since(&self, cursor: &str) -> Result<(Vec<ObjectRow>, String), StoreError> {
        type Row = (i64, String, Option<String>, Option<String>, Option<String>, String, String, Option<String>, Option<i64>, Option<String>, String);
        // `updated_at` has millisecond resolution and one writer commits at a time, so `>=`
        // the last value seen misses nothing (rows of that same millisecond come again).
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views, updated_at
             FROM objects WHERE updated_at >= ? ORDER BY updated_at, id",
        )
        .bind(cursor)
        .fetch_all(&self.pool)
        .await?;
        let mut until = cursor.to_string();
        let rows = rows
            .into_iter()
            .map(|(id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views, updated_at)| {
                until = updated_at;
                ObjectRow { id, uri, seller_id, listing_id, platform, phash, dhash, pdq, pdq_quality, views }
            })
            .collect();
        Ok((rows, until))
    }

    async fn failures(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT uri, stage, reason FROM failures").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(uri, stage, reason)| (uri, format!("{stage}/{reason}"))).collect())
    }

    async fn begin_run(&self, source: &str, models: &[ModelManifest]) -> Result<(i64, Vec<i64>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let run_id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (tusk_version, source, status) VALUES (?, ?, 'running') RETURNING id",
        )
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(source)
        .fetch_one(&mut *tx)
        .await?;
        let mut ids = Vec::with_capacity(models.len());
        for m in models {
            let (task, thresholds) = model_task_and_thresholds(m);
            sqlx::query(
                "INSERT INTO models (name, version, sha256, task, thresholds) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (name, version, sha256) DO UPDATE SET thresholds = excluded.thresholds",
            )
            .bind(&m.name)
            .bind(&m.version)
            .bind(m.sha256.to_ascii_lowercase())
            .bind(task)
            .bind(thresholds)
            .execute(&mut *tx)
            .await?;
            let id: i64 = sqlx::query_scalar("SELECT id FROM models WHERE name = ? AND version = ? AND sha256 = ?")
                .bind(&m.name)
                .bind(&m.version)
                .bind(m.sha256.to_ascii_lowercase())
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("INSERT OR IGNORE INTO run_models (run_id, model_id) VALUES (?, ?)")
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
        sqlx::query(
            "UPDATE runs SET status = ?, processed = ?, skipped = ?, failed = ?,
             finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
        )
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
        let row = sqlx::query(
            "SELECT o.id,
                    (SELECT group_concat(r.model_id) FROM results r
                      WHERE r.object_id = o.id AND r.fingerprint = o.fingerprint) AS done
             FROM objects o WHERE o.uri = ? AND o.fingerprint = ? AND o.hash_version = ?",
        )
        .bind(uri)
        .bind(fingerprint)
        .bind(HASH_VERSION)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            let done: Option<String> = row.try_get("done")?;
            let done: Vec<i64> = done
                .unwrap_or_default()
                .split(',')
                .filter_map(|s| s.parse().ok())
                .collect();
            if model_ids.iter().all(|m| done.contains(m)) {
                return Ok(true);
            }
        }
        let permanent: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM failures WHERE uri = ? AND fingerprint = ? AND retryable = 0",
        )
        .bind(uri)
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        Ok(permanent.is_some())
    }

    async fn write(&self, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in records {
            match &r.failure {
                Some(_) => write_failure(&mut tx, run_id, r).await?,
                None => write_result(&mut tx, run_id, r, model_ids).await?,
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn object_id(&self, uri: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM objects WHERE uri = ?").bind(uri).fetch_optional(&self.pool).await?)
    }

    async fn record(&self, id: i64) -> Result<Option<Record>, StoreError> {
        let row: Option<RecordRow> = sqlx::query_as(
            "SELECT uri, fingerprint, kind, listing_id, seller_id, platform, meta, width, height, phash, dhash, pdq, pdq_quality
             FROM objects WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scores: Vec<(String, String, f64)> = sqlx::query_as(
            "SELECT m.name, s.label, s.score FROM scores s JOIN objects o ON o.id = s.object_id AND o.fingerprint = s.fingerprint
             JOIN models m ON m.id = s.model_id WHERE s.object_id = ? ORDER BY m.name, s.label",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        type Det = (String, String, f64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
        let detections: Vec<Det> = sqlx::query_as(
            "SELECT m.name, d.label, d.score, d.x0, d.y0, d.x1, d.y1 FROM detections d JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint
             JOIN models m ON m.id = d.model_id WHERE d.object_id = ? AND d.flagged = TRUE ORDER BY d.score DESC, d.id",
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
        let done = sqlx::query("INSERT INTO tokens (name, role, sha256) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
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
        let done = sqlx::query("UPDATE tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE name = ? AND revoked_at IS NULL").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_decision(&self, d: &NewDecision) -> Result<Option<Decision>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let fingerprint: Option<String> = sqlx::query_scalar("SELECT fingerprint FROM objects WHERE id = ?").bind(d.object_id).fetch_optional(&mut *tx).await?;
        let Some(fingerprint) = fingerprint else { return Ok(None) };
        if d.action == "undo" {
            let standing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM decisions x WHERE id = ? AND object_id = ? AND action <> 'undo'
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
             WHERE d.object_id = ? AND d.fingerprint = ? AND d.flagged = 1 ORDER BY d.score DESC, d.id LIMIT 1",
        )
        .bind(d.object_id)
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        let (model, version, label, score, thresholds) = top.map_or((None, None, None, None, None), |(m, v, l, s, t)| (Some(m), Some(v), Some(l), Some(s), Some(t)));
        let threshold = thresholds.as_deref().zip(label.as_deref()).and_then(|(t, l)| super::review::threshold_of(t, l));
        let row: Option<DecisionRow> = sqlx::query_as(&format!(
            "INSERT INTO decisions (object_id, fingerprint, action, reason, note, boxes, undoes, who, model, model_version, label, score, threshold)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {DECISION_COLUMNS}"
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
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE (?1 IS NULL OR object_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
        ))
        .bind(f.object_id)
        .bind(f.after.unwrap_or(0))
        .bind(f.limit.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(decision_from).collect())
    }

    async fn review_queue(&self, f: &QueueFilter) -> Result<Vec<QueueRow>, StoreError> {
        let (sql, params) = super::review::queue_sql(f, super::review::Dialect::Sqlite);
        let mut q = sqlx::query_as::<_, QueueSqlRow>(&sql);
        for p in params {
            q = q.bind(p);
        }
        let rows = q.bind(f.limit).bind(f.offset).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(queue_row_from).collect())
    }
}

async fn write_failure(tx: &mut Transaction<'_, Sqlite>, run_id: i64, r: &Record) -> Result<(), StoreError> {
    let f = r.failure.as_ref().expect("caller checked");
    sqlx::query(
        "INSERT INTO failures (uri, fingerprint, stage, reason, message, retryable, run_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (uri) DO UPDATE SET fingerprint = excluded.fingerprint, stage = excluded.stage,
             reason = excluded.reason, message = excluded.message, retryable = excluded.retryable,
             run_id = excluded.run_id, attempts = attempts + 1,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
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

async fn write_result(
    tx: &mut Transaction<'_, Sqlite>,
    run_id: i64,
    r: &Record,
    model_ids: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let fingerprint = r.fingerprint.as_deref().unwrap_or("");
    let hashes = r.hashes.expect("a successful record has hashes");
    let object_id: i64 = sqlx::query_scalar(
        "INSERT INTO objects (uri, fingerprint, kind, listing_id, seller_id, platform, meta,
                              width, height, phash, dhash, pdq, pdq_quality, hash_version, run_id, views)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (uri) DO UPDATE SET fingerprint = excluded.fingerprint, kind = excluded.kind,
             listing_id = excluded.listing_id, seller_id = excluded.seller_id,
             platform = excluded.platform, meta = excluded.meta, width = excluded.width,
             height = excluded.height, phash = excluded.phash, dhash = excluded.dhash,
             pdq = excluded.pdq, pdq_quality = excluded.pdq_quality,
             hash_version = excluded.hash_version, run_id = excluded.run_id, views = excluded.views, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
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
                "INSERT INTO features (object_id, fingerprint, keypoints, data) VALUES (?, ?, ?, ?)
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
            sqlx::query("DELETE FROM features WHERE object_id = ?").bind(object_id).execute(&mut **tx).await?;
        }
    }
    // Results for bytes that are no longer there describe nothing: drop them.
    for table in ["results", "scores", "detections"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE object_id = ? AND fingerprint <> ?"))
            .bind(object_id)
            .bind(fingerprint)
            .execute(&mut **tx)
            .await?;
    }
    for (model, labels) in &r.scores {
        let Some(model_id) = model_ids.get(model).copied() else { continue };
        sqlx::query("INSERT OR REPLACE INTO results (object_id, fingerprint, model_id, run_id) VALUES (?, ?, ?, ?)")
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .bind(run_id)
            .execute(&mut **tx)
            .await?;
        for (label, score) in labels {
            sqlx::query(
                "INSERT OR REPLACE INTO scores (object_id, fingerprint, model_id, label, score) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .bind(label)
            .bind(*score as f64)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("DELETE FROM detections WHERE object_id = ? AND fingerprint = ? AND model_id = ?")
            .bind(object_id)
            .bind(fingerprint)
            .bind(model_id)
            .execute(&mut **tx)
            .await?;
        for d in r.detections.iter().filter(|d| &d.model == model) {
            let b = d.bbox.map(|b| b.map(|v| v as f64));
            sqlx::query(
                "INSERT INTO detections (object_id, fingerprint, model_id, label, score, x0, y0, x1, y1, flagged)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    sqlx::query("DELETE FROM failures WHERE uri = ?")
        .bind(&r.uri)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
