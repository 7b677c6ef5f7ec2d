//! Where the bytes of an object come from, behind one type: the pipeline lists, fingerprints
//! and reads through a [`Fetcher`] and never asks whether an object is a local file or an S3
//! object.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_channel::Sender;
use tokio::io::AsyncReadExt;

use super::s3::{self, S3Options, S3SetupError};
use super::{file_fingerprint, Entry, Item, Location, SourceSpec};
use crate::record::Failure;

/// Lists sources and reads objects; the object-store client is made on first use, so a local
/// scan never builds one.
#[derive(Debug)]
pub struct Fetcher {
    opts: S3Options,
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
}

impl Fetcher {
    /// A fetcher with these object-store settings.
    pub fn new(opts: S3Options) -> Self {
        Self { opts, client: tokio::sync::OnceCell::new() }
    }

    /// The object-store client (for writing part files beside the scan).
    pub async fn s3_client(&self) -> &aws_sdk_s3::Client {
        self.client.get_or_init(|| s3::client(&self.opts)).await
    }

    /// One quick request against an S3 source, so bad credentials or a missing bucket stop a
    /// run at once; nothing to check for a local source.
    pub async fn check(&self, source: &SourceSpec) -> Result<(), S3SetupError> {
        match source {
            SourceSpec::S3 { url, .. } => s3::check(&self.opts, url).await,
            _ => Ok(()),
        }
    }

    /// Lists the source once into `entries`, until it ends, `stop` is set or the receiver
    /// goes away.
    pub async fn list(&self, source: &SourceSpec, entries: &Sender<Entry>, stop: &Arc<AtomicBool>) -> Result<(), String> {
        match source {
            SourceSpec::S3 { url, rules, default_kind } => {
                s3::list(self.s3_client().await, url, rules, *default_kind, |e| {
                    let (entries, stop) = (entries.clone(), stop.clone());
                    async move { !stop.load(Ordering::Relaxed) && entries.send(e).await.is_ok() }
                })
                .await
            }
            local => {
                let (local, entries, stop) = (local.clone(), entries.clone(), stop.clone());
                tokio::task::spawn_blocking(move || local.walk(&mut |e| !stop.load(Ordering::Relaxed) && entries.send_blocking(e).is_ok()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The item's fingerprint: from the source, or a stat of the file, or a HEAD of the object.
    pub async fn fingerprint(&self, item: &Item) -> Result<String, Failure> {
        if let Some(f) = &item.fingerprint {
            return Ok(f.clone());
        }
        match &item.location {
            Location::File(path) => match tokio::fs::metadata(path).await {
                Ok(m) if m.is_file() => Ok(file_fingerprint(&m)),
                Ok(_) => Err(Failure::read("not_a_file", format!("{} is not a regular file", path.display()))),
                Err(e) => Err(io_failure(&e, path)),
            },
            Location::S3 { bucket, key } => s3::head(self.s3_client().await, bucket, key).await,
        }
    }

    /// The object's bytes; anything over `max_bytes` is refused before it is read.
    pub async fn get(&self, location: &Location, max_bytes: u64) -> Result<Vec<u8>, Failure> {
        match location {
            Location::File(path) => read_file(path, max_bytes).await.map_err(|e| match e {
                ReadError::Io(e) => io_failure(&e, path),
                ReadError::TooLarge(len) => too_large(len, max_bytes),
            }),
            Location::S3 { bucket, key } => s3::get(self.s3_client().await, bucket, key, max_bytes, self.opts.attempts).await,
        }
    }
}

enum ReadError {
    Io(std::io::Error),
    TooLarge(u64),
}

async fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let mut file = tokio::fs::File::open(path).await.map_err(ReadError::Io)?;
    let len = file.metadata().await.map_err(ReadError::Io)?.len();
    if len > max_bytes {
        return Err(ReadError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // A file that grew since the stat is still cut at the limit.
    (&mut file).take(max_bytes + 1).read_to_end(&mut buf).await.map_err(ReadError::Io)?;
    if buf.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// The failure record of an object over `--max-file-mb`.
fn too_large(len: u64, max_bytes: u64) -> Failure {
    Failure::read("file_too_large", format!("{len} bytes is over --max-file-mb ({max_bytes} bytes)"))
}

/// The failure record of a local read.
fn io_failure(e: &std::io::Error, path: &Path) -> Failure {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "not_found",
        std::io::ErrorKind::PermissionDenied => "permission_denied",
        _ => "io_error",
    };
    Failure::read(reason, format!("{}: {e}", path.display()))
}
