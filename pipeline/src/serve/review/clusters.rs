//! Re-used-photo clusters for the review queue and cluster-wide decisions: computed over the
//! whole catalog (verified matches, any sellers), kept until the catalog changes. A stale index
//! is served while a fresh one is computed in the background, so a page never waits on it
//! except the very first time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::reuse::{self, HashKind, Rule};
use crate::serve::error::ApiError;
use crate::serve::App;

/// Which objects show the same photo.
#[derive(Debug, Default)]
pub struct ClusterIndex {
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
}

/// The last index and the catalog size it was computed at.
#[derive(Debug, Default)]
pub struct ClusterCache {
    last: Mutex<Option<(usize, Arc<ClusterIndex>)>>,
    computing: AtomicBool,
}

async fn compute(app: &App) -> Result<(usize, Arc<ClusterIndex>), ApiError> {
    let mut catalog = app.catalog.write().await;
    catalog.refresh(&app.store).await.map_err(ApiError::store)?;
    let catalog = catalog.downgrade();
    let clusters = reuse::clusters(&catalog, &app.store, &Rule::new(HashKind::Default, None), 1).await.map_err(ApiError::store)?;
    let mut index = ClusterIndex::default();
    for c in &clusters {
        let ids: Vec<i64> = c.members.iter().map(|&p| catalog.entries[p].id).collect();
        for &id in &ids {
            index.of.insert(id, index.members.len());
        }
        index.members.push(ids);
    }
    index.clusters = clusters;
    Ok((catalog.entries.len(), Arc::new(index)))
}

/// The current cluster index: the cached one (refreshed in the background when the catalog
/// grew), or, the first time, one computed now.
pub async fn index(app: &Arc<App>) -> Result<Arc<ClusterIndex>, ApiError> {
    let size = {
        let mut catalog = app.catalog.write().await;
        catalog.refresh(&app.store).await.map_err(ApiError::store)?;
        catalog.entries.len()
    };
    let cached = app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match cached {
        Some((at, index)) if at == size => Ok(index),
        Some((_, index)) => {
            if !app.clusters.computing.swap(true, Ordering::AcqRel) {
                let app = app.clone();
                tokio::spawn(async move {
                    match compute(&app).await {
                        Ok(fresh) => *app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh),
                        Err(e) => tracing::warn!("recomputing the review clusters failed: {}", e.message),
                    }
                    app.clusters.computing.store(false, Ordering::Release);
                });
            }
            Ok(index)
        }
        None => {
            let fresh = compute(app).await?;
            let index = fresh.1.clone();
            *app.clusters.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
            Ok(index)
        }
    }
}
