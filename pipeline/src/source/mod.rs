//! Sources: where objects come from, and what is known about them before they are read.

pub mod folder;
pub mod manifest;

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
}

impl SourceSpec {
    /// Picks folder or manifest by what `path` is.
    pub fn from_path(path: &Path, kind: Kind) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
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

    /// Walks the source on the calling (blocking) thread, handing each entry to `emit`;
    /// stops early when `emit` returns false.
    pub fn walk(&self, emit: &mut dyn FnMut(Entry) -> bool) -> std::io::Result<()> {
        match self {
            SourceSpec::Folder { root, kind } => folder::walk(root, *kind, emit),
            SourceSpec::Manifest { path, default_kind } => manifest::walk(path, *default_kind, emit),
        }
    }

    /// A short description for the runs table.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Folder { root, .. } => root.display().to_string(),
            SourceSpec::Manifest { path, .. } => path.display().to_string(),
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
