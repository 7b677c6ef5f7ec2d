//! Bearer tokens and roles. A token is 32 random bytes shown once (`tusk token create`); the
//! store keeps only its SHA-256, and requests are checked against the live tokens' hashes in
//! constant time. Tokens never reach logs or error messages.

use std::io::Read;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An X-ray station: posts scans.
    Station,
    /// A crawler: posts listing photos.
    Crawler,
    /// An analyst: reads objects, matches, clusters and links.
    Analyst,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Crawler => "crawler",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "station" => Ok(Role::Station),
            "crawler" => Ok(Role::Crawler),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (station, crawler, analyst or admin)")),
        }
    }
}

/// A new random token: `tusk_` and 64 hex digits (32 bytes from the OS).
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("tusk_{}", hex::encode(bytes)))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Live tokens by hash, and when they were read.
type Live = (Instant, Vec<([u8; 32], Caller)>);

/// The live tokens, reloaded from the store at most every `ttl` (so a revocation takes effect
/// within it without a restart).
#[derive(Debug)]
pub struct Tokens {
    store: Store,
    ttl: Duration,
    cached: RwLock<Live>,
}

impl Tokens {
    /// Loads the live tokens now.
    pub async fn load(store: Store, ttl: Duration) -> Result<Self, StoreError> {
        let live = Self::fetch(&store).await?;
        Ok(Self { store, ttl, cached: RwLock::new((Instant::now(), live)) })
    }

    async fn fetch(store: &Store) -> Result<Vec<([u8; 32], Caller)>, StoreError> {
        Ok(store
            .tokens()
            .await?
            .into_iter()
            .filter(|t| !t.revoked)
            .filter_map(|t| {
                let hash: [u8; 32] = hex::decode(&t.sha256).ok()?.try_into().ok()?;
                Some((hash, Caller { name: t.name, role: t.role.parse().ok()? }))
            })
            .collect())
    }

    /// The caller a bearer token belongs to, if it is live.
    pub async fn check(&self, token: &str) -> Option<Caller> {
        let stale = self.cached.read().unwrap_or_else(|e| e.into_inner()).0.elapsed() > self.ttl;
        if stale {
            match Self::fetch(&self.store).await {
                Ok(live) => *self.cached.write().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), live),
                Err(e) => tracing::warn!("reloading tokens failed, keeping the last list: {e}"),
            }
        }
        let hash = token_hash(token);
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        // Every live token is compared, whatever matches, so timing tells nothing.
        let mut found = None;
        for (h, caller) in &cached.1 {
            if same(h, &hash) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tokens() {
        assert!(Role::Admin.allows(Role::Station));
        assert!(Role::Station.allows(Role::Station));
        assert!(!Role::Station.allows(Role::Crawler));
        assert!(!Role::Analyst.allows(Role::Admin));
        assert_eq!("crawler".parse::<Role>().unwrap(), Role::Crawler);
        assert!("root".parse::<Role>().is_err());
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert!(same(&token_hash(&a), &token_hash(&a)));
        assert!(!same(&token_hash(&a), &token_hash(&b)));
    }
}
