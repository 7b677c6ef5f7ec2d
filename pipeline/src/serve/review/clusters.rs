//! Re-used-photo clusters for the review queue and cluster-wide decisions. Kept up to date
//! incrementally in the background: the first build verifies every candidate pair of the
//! catalog; later ones verify only the objects added since. Work runs on a snapshot of the
//! catalog, so listings keep joining it meanwhile, and pages never wait for it (beyond a short
//! grace the first time): until a build finishes, the queue shows objects unfolded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::HashMap;

use crate::reuse::{self, verify::Params, Catalog, HashKind, Query, Rule};
use crate::serve::error::ApiError;
use crate::serve::App;

/// How long a page waits for a build before going on without it.
const GRACE: Duration = Duration::from_secs(2);

/// Which objects show the same photo, for the catalog's first `upto` positions.
#[derive(Debug, Default, Clone)]
pub struct ClusterIndex {
    upto: usize,
    /// Verified pairs of catalog positions found so far.
    pairs: Vec<(usize, usize)>,
    of: HashMap<i64, usize>,
    members: Vec<Vec<i64>>,
    /// The clusters as catalog positions (valid in the catalog they came from and any later
    /// one: the catalog only appends).
    pub clusters: Vec<reuse::Cluster>,
}

impl ClusterIndex {
    /// The object ids of `id`'s cluster (itself included), or just `[id]`.
    pub fn members(&self, id: i64) -> Vec<i64> {
        self.of.get(&id).map_or_else(|| vec![id], |&c| self.members[c].clone())
    }

    /// The other objects showing the same photo.
    pub fn others(&self, id: i64) -> Vec<i64> {
        self.members(id).into_iter().filter(|&m| m != id).collect()
    }

    /// The cluster's number, for folding queue rows.
    pub fn cluster(&self, id: i64) -> Option<usize> {
        self.of.get(&id).copied()
    }

    /// This index brought up to `catalog`: the new objects' verified matches added.
    async fn extended(&self, catalog: &Catalog, store: &crate::store::Store) -> Result<ClusterIndex, crate::store::StoreError> {
        let rule = Rule::new(HashKind::Default, None);
        let mut next = self.clone();
        if self.upto == 0 {
            next.pairs = reuse::verified_pairs(catalog, store, &rule, &Params::default()).await?.into_iter().map(|(a, b, _)| (a, b)).collect();
        } else {
            for p in self.upto..catalog.entries.len() {
                if !catalog.is_current(p) {
                    continue;
                }
                let mut q = Query::from_entry(&catalog.entries[p]);
                q.features = reuse::entry_features(catalog, store, p).await?;
                for m in reuse::matches(catalog, store, &q, &rule, &Params::default()).await? {
                    if m.matched && m.entry != p {
                        next.pairs.push((p.min(m.entry), p.max(m.entry)));
                    }
                }
            }
            next.pairs.sort_unstable();
            next.pairs.dedup();
        }
        next.upto = catalog.entries.len();
        next.clusters = catalog.clusters(&next.pairs, 1);
        next.of.clear();
        next.members.clear();
        for c in &next.clusters {
            let ids: Vec<i64> = c.members.iter().map(|&p| catalog.entries[p].id).collect();
            for &id in &ids {
                next.of.insert(id, next.members.len());
            }
            next.members.push(ids);
        }
        Ok(next)
    }
}

/// The last index built, and whether a build runs.
#[derive(Debug, Default)]
pub struct ClusterCache {
    last: Mutex<Option<Arc<ClusterIndex>>>,
    building: AtomicBool,
    built: tokio::sync::Notify,
}

/// Starts a build in the background unless one runs.
fn start_build(app: &Arc<App>) {
    if app.clusters.building.swap(true, Ordering::AcqRel) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let snapshot = app.catalog.read().await.clone();
        let base = app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        let started = std::time::Instant::now();
        match base.extended(&snapshot, &app.store).await {
            Ok(next) => {
                tracing::info!(target: "tusk::serve::review", objects = snapshot.entries.len(), clusters = next.clusters.len(), "review clusters built in {:.1} s", started.elapsed().as_secs_f64());
                *app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(next));
            }
            Err(e) => tracing::warn!("building the review clusters failed: {e}"),
        }
        app.clusters.building.store(false, Ordering::Release);
        app.clusters.built.notify_waiters();
    });
}

/// The latest cluster index, and whether it covers the whole catalog. A build starts when the
/// catalog grew; the first time the call waits up to [`GRACE`] for it, then goes on without.
pub async fn index(app: &Arc<App>) -> Result<(Arc<ClusterIndex>, bool), ApiError> {
    let size = {
        let mut catalog = app.catalog.write().await;
        catalog.refresh(&app.store).await.map_err(ApiError::store)?;
        catalog.entries.len()
    };
    let current = |app: &App| app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(index) = current(app) {
        if index.upto >= size {
            return Ok((index, true));
        }
        start_build(app);
        return Ok((index, false));
    }
    let built = app.clusters.built.notified();
    start_build(app);
    let _ = tokio::time::timeout(GRACE, built).await;
    Ok(match current(app) {
        Some(index) => {
            let whole = index.upto >= size;
            (index, whole)
        }
        None => (Arc::new(ClusterIndex::default()), false),
    })
}

/// The complete index, waiting for a build to finish (for cluster-wide decisions, which must
/// not miss a copy).
pub async fn complete(app: &Arc<App>) -> Result<Arc<ClusterIndex>, ApiError> {
    loop {
        let built = app.clusters.built.notified();
        let (index, whole) = index(app).await?;
        if whole {
            return Ok(index);
        }
        if tokio::time::timeout(Duration::from_secs(30), built).await.is_err() {
            return Err(ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "clusters_building", "the re-used-photo clusters are still being built; retry in a minute"));
        }
    }
}
