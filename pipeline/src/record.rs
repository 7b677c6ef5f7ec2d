//! The result of processing one object: what sinks write (JSONL schema version 1).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::hash::pdq::Pdq;
use crate::reuse::features::ObjectFeatures;
use crate::source::ObjectMeta;

/// Version of the JSONL line layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Where in the pipeline a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The source could not name or list the object.
    Source,
    /// The bytes could not be read.
    Read,
    /// The bytes are not a usable image.
    Decode,
    /// A model failed on the image.
    Infer,
}

impl Stage {
    /// The name stored in the failures table.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Source => "source",
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Infer => "infer",
        }
    }

    /// Whether a rerun should try again: decoding the same bytes fails the same way, while
    /// reading and inference can fail for passing reasons.
    pub fn retryable(self) -> bool {
        !matches!(self, Stage::Decode)
    }
}

/// Why an object produced no result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The stage that failed.
    pub stage: Stage,
    /// A stable, machine-readable reason code (`truncated`, `too_large`, `not_found`, …).
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

impl Failure {
    /// A failure to read an object's bytes (missing, denied, unreachable, too large).
    pub fn read(reason: &str, message: String) -> Self {
        Failure {
            stage: Stage::Read,
            reason: reason.into(),
            message,
        }
    }
}

/// The perceptual hashes of one picture (64-bit pHash and dHash as 16 hex digits, 256-bit PDQ
/// as 64, with PDQ's quality score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hashes {
    /// DCT hash (pHash).
    pub phash: u64,
    /// Difference hash (dHash).
    pub dhash: u64,
    /// Meta's PDQ hash.
    pub pdq: Pdq,
    /// PDQ's quality, 0–100; below [`crate::hash::pdq::MIN_QUALITY`] the hash is unreliable.
    pub pdq_quality: u8,
}

impl Serialize for Hashes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("phash", &format!("{:016x}", self.phash))?;
        m.serialize_entry("dhash", &format!("{:016x}", self.dhash))?;
        m.serialize_entry("pdq", &self.pdq.to_hex())?;
        m.serialize_entry("pdq_quality", &self.pdq_quality)?;
        m.end()
    }
}

/// The hashes of one part of a picture besides the whole: the photo cut out of a screenshot,
/// frame or collage (`photo`), or centre crops of that photo (`centre5`, `centre10`), so that a
/// re-post showing the photo inside other pixels, or cropped, still becomes a match candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    /// Which part: `photo`, `centre5` or `centre10`.
    pub view: String,
    /// `[x0, y0, x1, y1]` in the pixels of the picture inside its borders.
    pub rect: [u32; 4],
    /// Its hashes.
    #[serde(flatten)]
    pub hashes: Hashes,
}

/// A label at or above its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The model's name.
    pub model: String,
    /// The tusk label.
    pub label: String,
    /// Its score.
    pub score: f32,
    /// Bounding box `[x0, y0, x1, y1]` in original pixels; `None` for classifiers.
    #[serde(rename = "box")]
    pub bbox: Option<[f32; 4]>,
    /// Whether the score reaches the label's threshold. Always true in a scan; `tusk eval` also
    /// keeps weaker boxes (false here) to rank them for average precision.
    pub flagged: bool,
}

/// Everything known about one processed object.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The object's uri.
    pub uri: String,
    /// Its fingerprint when it could be read (size+mtime, or ETag).
    pub fingerprint: Option<String>,
    /// Source context.
    pub meta: ObjectMeta,
    /// Width after EXIF orientation.
    pub width: Option<u32>,
    /// Height after EXIF orientation.
    pub height: Option<u32>,
    /// Perceptual hashes.
    pub hashes: Option<Hashes>,
    /// Hashes of parts of the picture ([`View`]); listing photos only.
    pub views: Vec<View>,
    /// Local features for verifying re-post matches; listing photos only, not in the JSONL.
    pub features: Option<Arc<ObjectFeatures>>,
    /// Every label's score, per model (model name → label → score).
    pub scores: BTreeMap<String, BTreeMap<String, f32>>,
    /// Labels at or above threshold.
    pub detections: Vec<Detection>,
    /// Set when the object failed.
    pub failure: Option<Failure>,
}

impl Record {
    /// An empty record for an object, to be filled in by the stages.
    pub fn new(uri: String, fingerprint: Option<String>, meta: ObjectMeta) -> Self {
        Record {
            uri,
            fingerprint,
            meta,
            width: None,
            height: None,
            hashes: None,
            views: Vec::new(),
            features: None,
            scores: BTreeMap::new(),
            detections: Vec::new(),
            failure: None,
        }
    }

    /// Whether any detection reaches its label's threshold: the object needs a human look.
    pub fn flagged(&self) -> bool {
        self.detections.iter().any(|d| d.flagged)
    }

    /// A record for an object that failed before producing anything.
    pub fn failed(uri: String, fingerprint: Option<String>, meta: ObjectMeta, failure: Failure) -> Self {
        Record {
            failure: Some(failure),
            ..Record::new(uri, fingerprint, meta)
        }
    }

    /// The JSONL line (without the newline). Scores are rounded to 6 decimals.
    pub fn to_json_line(&self) -> String {
        self.to_json().to_string()
    }

    /// The JSONL line's value (what the HTTP API answers too).
    pub fn to_json(&self) -> serde_json::Value {
        let round = |x: f32| (x as f64 * 1e6).round() / 1e6;
        let scores: BTreeMap<&String, BTreeMap<&String, f64>> = self
            .scores
            .iter()
            .map(|(m, labels)| (m, labels.iter().map(|(l, s)| (l, round(*s))).collect()))
            .collect();
        let detections: Vec<serde_json::Value> = self
            .detections
            .iter()
            .filter(|d| d.flagged)
            .map(|d| {
                serde_json::json!({"model": d.model, "label": d.label, "score": round(d.score), "box": d.bbox})
            })
            .collect();
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "uri": self.uri,
            "kind": self.meta.kind,
            "listing_id": self.meta.listing_id,
            "seller_id": self.meta.seller_id,
            "platform": self.meta.platform,
            "width": self.width,
            "height": self.height,
            "hashes": self.hashes,
            "views": self.views,
            "scores": scores,
            "detections": detections,
            "flagged": self.flagged(),
            "failure": self.failure,
        })
    }
}
