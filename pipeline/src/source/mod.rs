//! Sources: where objects come from, and what is known about them before they are read.

pub mod fetch;
pub mod folder;
pub mod manifest;
pub mod s3;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What an object is a picture of, which decides the models that run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A marketplace or social-media listing photo.
    #[default]
    Listing,
    /// A parcel X-ray scan.
    Xray,
}

impl Kind {
    /// The name used in records and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Listing => "listing",
            Kind::Xray => "xray",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "listing" => Ok(Kind::Listing),
            "xray" => Ok(Kind::Xray),
            other => Err(format!("unknown kind `{other}` (listing or xray)")),
        }
    }
}

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    File(PathBuf),
    /// An object in S3-compatible storage.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
}

impl Location {
    /// One string for the location (a path, or `s3://bucket/key`), as the job queue keeps it.
    pub fn to_text(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// The location [`Location::to_text`] wrote.
    pub fn from_text(text: &str) -> Location {
        match text.strip_prefix("s3://").and_then(|rest| rest.split_once('/')) {
            Some((bucket, key)) => Location::S3 { bucket: bucket.to_string(), key: key.to_string() },
            None => Location::File(PathBuf::from(text)),
        }
    }
}

/// What the source says about an object (the crawler's context, kept as given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Listing photo or X-ray scan.
    pub kind: Kind,
    /// The marketplace listing the photo belongs to.
    pub listing_id: Option<String>,
    /// The seller account that posted it.
    pub seller_id: Option<String>,
    /// The marketplace or network.
    pub platform: Option<String>,
    /// Free JSON from the manifest, stored as is.
    pub meta: Option<serde_json::Value>,
}

/// One object to process.
#[derive(Debug, Clone)]
pub struct Item {
    /// Stable identifier: the absolute path for folders, the manifest's `uri` otherwise.
    pub uri: String,
    /// Where to read it.
    pub location: Location,
    /// Its version as the source knows it (ETag from a listing, size-mtime from a walk);
    /// `None` when it must be asked for before planning.
    pub fingerprint: Option<String>,
    /// Context from the source.
    pub meta: ObjectMeta,
}

/// Something a source could not turn into an item (a bad manifest line, a link leaving the
/// root); it becomes a failure record instead of stopping the run.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// What to call it in the failure record.
    pub uri: String,
    /// Stable reason code.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// What a source emits, in order.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An object to process.
    Item(Item),
    /// Something that could not become an object.
    Rejected(Rejected),
}

/// Where a scan reads from, as given on the command line.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A folder, walked recursively.
    Folder {
        /// The root folder.
        root: PathBuf,
        /// Kind given to every object.
        kind: Kind,
    },
    /// A JSONL manifest file.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Kind for lines without one.
        default_kind: Kind,
    },
    /// Every object under an S3 prefix.
    S3 {
        /// Bucket and prefix.
        url: s3::S3Url,
        /// Kinds by key prefix.
        rules: s3::KindRules,
        /// Kind for keys no rule matches.
        default_kind: Kind,
    },
}

impl SourceSpec {
    /// Picks S3, folder or manifest by what `source` is.
    pub fn parse(source: &str, kind: Kind, rules: s3::KindRules) -> std::io::Result<Self> {
        match s3::S3Url::parse(source) {
            Some(url) => Ok(SourceSpec::S3 { url, rules, default_kind: kind }),
            None => Self::from_path(Path::new(source), kind),
        }
    }

    /// Picks folder or manifest by what `path` is.
    pub fn from_path(path: &Path, kind: Kind) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        if meta.is_file() && folder::is_image_path(path) {
            return Err(std::io::Error::other(
                "this is an image; pass the folder that holds it, or a JSONL manifest",
            ));
        }
        Ok(if meta.is_dir() {
            SourceSpec::Folder {
                root: path.to_path_buf(),
                kind,
            }
        } else {
            SourceSpec::Manifest {
                path: path.to_path_buf(),
                default_kind: kind,
            }
        })
    }

    /// Walks a local source on the calling (blocking) thread, handing each entry to `emit`;
    /// stops early when `emit` returns false. (S3 sources are listed by `s3::list`.)
    pub fn walk(&self, emit: &mut dyn FnMut(Entry) -> bool) -> std::io::Result<()> {
        match self {
            SourceSpec::Folder { root, kind } => folder::walk(root, *kind, emit),
            SourceSpec::Manifest { path, default_kind } => manifest::walk(path, *default_kind, emit),
            SourceSpec::S3 { .. } => Err(std::io::Error::other("an S3 source is listed asynchronously")),
        }
    }

    /// A short description for the runs table.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Folder { root, .. } => root.display().to_string(),
            SourceSpec::Manifest { path, .. } => path.display().to_string(),
            SourceSpec::S3 { url, .. } => format!("s3://{}/{}", url.bucket, url.prefix),
        }
    }
}

/// Fingerprint of a local file: size and modification time, so a changed file is redone.
pub fn file_fingerprint(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{mtime}", meta.len())
}
