//! The job queue in PostgreSQL (`jobs`, migration 0002): enqueue idempotently by uri and
//! fingerprint, claim in batches with `FOR UPDATE SKIP LOCKED`, hold a lease by heartbeat,
//! and complete in the transaction that writes the results, fenced by the lease token.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::record::Record;
use crate::source::{Item, Location, ObjectMeta};
use crate::store::postgres::PgStore;
use crate::store::StoreError;

/// Retries of a failed read before its failure record is final (the dead letter).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: i32,
    /// Wait before the second attempt; doubled each time after.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, first_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doubled = self.first_backoff.saturating_mul(1 << attempts.clamp(1, 16).saturating_sub(1));
        doubled.min(self.max_backoff)
    }
}

/// One claimed job.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job's id.
    pub id: i64,
    /// The object to process.
    pub item: Item,
    /// The object version the job is for.
    pub fingerprint: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// A batch of jobs held under one lease token.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The fencing token: a commit counts only while the jobs still carry it.
    pub token: i64,
    /// The jobs.
    pub jobs: Vec<Claimed>,
}

/// What a completion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completed {
    /// Jobs whose records were stored (results, or final failure records).
    pub stored: usize,
    /// Jobs sent back for another attempt after a retryable failure.
    pub retried: usize,
    /// Jobs no longer held by this lease (expired and taken over): nothing written for them.
    pub fenced: usize,
}

/// Jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting (including ones backing off before a retry).
    pub ready: i64,
    /// Held by a worker.
    pub leased: i64,
    /// Stored.
    pub done: i64,
    /// Ended with a failure record.
    pub failed: i64,
}

/// The queue, on the store's PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Queue {
    store: PgStore,
}

impl Queue {
    /// The queue of this store's database (the store's migrations made its table).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// Adds one job per object version not queued before; returns how many were new.
    pub async fn enqueue(&self, items: &[(Item, String)]) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in items.chunks(1000) {
            let uris: Vec<&str> = chunk.iter().map(|(i, _)| i.uri.as_str()).collect();
            let fingerprints: Vec<&str> = chunk.iter().map(|(_, f)| f.as_str()).collect();
            let locations: Vec<String> = chunk.iter().map(|(i, _)| i.location.to_text()).collect();
            let metas: Vec<String> = chunk.iter().map(|(i, _)| serde_json::to_string(&i.meta).unwrap_or_else(|_| "{}".into())).collect();
            let done = sqlx::query(
                "INSERT INTO jobs (uri, fingerprint, location, meta)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT (uri, fingerprint) DO NOTHING",
            )
            .bind(&uris)
            .bind(&fingerprints)
            .bind(&locations)
            .bind(&metas)
            .execute(self.store.pool())
            .await?;
            added += done.rows_affected();
        }
        Ok(added)
    }

    /// Claims up to `n` jobs that are ready (or whose lease ran out) for `lease`; `None` when
    /// nothing is claimable now.
    pub async fn claim(&self, owner: &str, n: i64, lease: Duration) -> Result<Option<Lease>, StoreError> {
        type Row = (i64, String, String, String, String, i32, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "WITH token AS (SELECT nextval('lease_tokens') AS t),
                  picked AS (
                    SELECT id FROM jobs
                    WHERE (state = 'ready' AND not_before <= clock_timestamp())
                       OR (state = 'leased' AND lease_until < clock_timestamp())
                    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             UPDATE jobs j SET state = 'leased', lease_owner = $2, lease_token = token.t,
                    lease_until = clock_timestamp() + make_interval(secs => $3),
                    attempts = j.attempts + 1, updated_at = clock_timestamp()
             FROM picked, token WHERE j.id = picked.id
             RETURNING j.id, j.uri, j.fingerprint, j.location, j.meta, j.attempts, j.lease_token",
        )
        .bind(n)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_all(self.store.pool())
        .await?;
        let Some(token) = rows.first().map(|r| r.6) else { return Ok(None) };
        let jobs = rows
            .into_iter()
            .map(|(id, uri, fingerprint, location, meta, attempts, _)| {
                let meta: ObjectMeta = serde_json::from_str(&meta).unwrap_or_default();
                Claimed { id, item: Item { uri, location: Location::from_text(&location), fingerprint: Some(fingerprint.clone()), meta }, fingerprint, attempts }
            })
            .collect();
        Ok(Some(Lease { token, jobs }))
    }

    /// Extends the lease; returns how many of its jobs it still holds (0: taken over).
    pub async fn heartbeat(&self, token: i64, lease: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = clock_timestamp() + make_interval(secs => $2)
             WHERE lease_token = $1 AND state = 'leased' AND lease_until >= clock_timestamp()",
        )
        .bind(token)
        .bind(lease.as_secs_f64())
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Stores the records of a lease's jobs and completes them, in one transaction, for the
    /// jobs the lease still holds (unexpired, same token); the others were taken over and get
    /// nothing from this worker. A retryable failure (a read) sends its job back with backoff
    /// until `retry.max_attempts`, then its failure record is stored like any other.
    pub async fn complete(&self, lease: &Lease, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>, retry: &RetryPolicy) -> Result<Completed, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let ids: Vec<i64> = lease.jobs.iter().map(|j| j.id).collect();
        // Locks the held jobs until commit: no one can take them over meanwhile.
        let held: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id = ANY($1) AND lease_token = $2 AND state = 'leased'
               AND lease_until > clock_timestamp() ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .bind(lease.token)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Completed { fenced: ids.len() - held.len(), ..Default::default() };
        let by_key: HashMap<(&str, &str), &Claimed> = lease.jobs.iter().map(|j| ((j.item.uri.as_str(), j.fingerprint.as_str()), j)).collect();
        let mut store = Vec::new();
        let (mut stored_ids, mut failed_ids) = (Vec::new(), Vec::new());
        let (mut retry_ids, mut retry_waits, mut retry_errors) = (Vec::new(), Vec::new(), Vec::new());
        for r in records {
            let Some(job) = by_key.get(&(r.uri.as_str(), r.fingerprint.as_deref().unwrap_or(""))) else { continue };
            if !held.contains(&job.id) {
                continue;
            }
            match &r.failure {
                Some(f) if f.stage.retryable() && job.attempts < retry.max_attempts => {
                    retry_ids.push(job.id);
                    retry_waits.push(retry.backoff(job.attempts).as_secs_f64());
                    retry_errors.push(format!("{}/{}: {}", f.stage.as_str(), f.reason, f.message));
                }
                Some(_) => {
                    failed_ids.push(job.id);
                    store.push(r.clone());
                }
                None => {
                    stored_ids.push(job.id);
                    store.push(r.clone());
                }
            }
        }
        PgStore::write_in(&mut tx, run_id, &store, model_ids).await?;
        for (state, ids) in [("done", &stored_ids), ("failed", &failed_ids)] {
            sqlx::query("UPDATE jobs SET state = $2, lease_token = NULL, lease_until = NULL, updated_at = clock_timestamp() WHERE id = ANY($1)")
                .bind(ids)
                .bind(state)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE jobs j SET state = 'ready', lease_token = NULL, lease_until = NULL, last_error = r.err,
                    not_before = clock_timestamp() + make_interval(secs => r.wait), updated_at = clock_timestamp()
             FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS r(id, wait, err) WHERE j.id = r.id",
        )
        .bind(&retry_ids)
        .bind(&retry_waits)
        .bind(&retry_errors)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        out.stored = stored_ids.len() + failed_ids.len();
        out.retried = retry_ids.len();
        Ok(out)
    }

    /// Gives a lease's jobs back untouched (a worker stopping before it started them); the
    /// attempt does not count.
    pub async fn release(&self, lease: &Lease) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'ready', lease_token = NULL, lease_until = NULL, attempts = GREATEST(attempts - 1, 0),
                    updated_at = clock_timestamp()
             WHERE lease_token = $1 AND state = 'leased'",
        )
        .bind(lease.token)
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Jobs by state (the autoscaler's queue depth is `ready + leased`).
    pub async fn depth(&self) -> Result<Depth, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetch_all(self.store.pool()).await?;
        let mut d = Depth::default();
        for (state, n) in rows {
            match state.as_str() {
                "ready" => d.ready = n,
                "leased" => d.leased = n,
                "done" => d.done = n,
                "failed" => d.failed = n,
                _ => {}
            }
        }
        Ok(d)
    }
}
