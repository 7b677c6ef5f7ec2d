//! `model.toml`: everything tusk needs to know to feed a model and read its output.
//!
//! The manifest is plain data (no I/O in these types); `load` reads and validates one file, and
//! `check_file` verifies the `.onnx` beside it against the recorded sha256.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelError;
use crate::source::Kind;

/// What the model does with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One score per label for the whole image.
    Classify,
    /// Boxes with a label and a score, in the YOLOv8/YOLO11 ONNX output layout
    /// (`[batch, 4 + classes, anchors]`; see `infer::detect`).
    Detect,
}

/// How the image is brought to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Resize to exactly width × height, ignoring the aspect ratio.
    Stretch,
    /// Fit inside width × height keeping the aspect ratio, pad the rest with `pad_value`.
    Letterbox,
    /// Resize the shorter side to `resize_shorter`, then cut the central width × height.
    CentreCrop,
}

/// Memory order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// batch, channel, height, width (PyTorch exports).
    Nchw,
    /// batch, height, width, channel (TensorFlow exports).
    Nhwc,
}

/// How raw outputs become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Mutually exclusive classes: softmax over all outputs.
    Softmax,
    /// Independent labels: a sigmoid per output.
    Sigmoid,
    /// The model already outputs probabilities.
    None,
}

/// The `[input]` table: name, size and preprocessing of the image tensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name as stored in the ONNX graph.
    pub name: String,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Tensor memory order.
    pub layout: Layout,
    /// Resize mode.
    pub resize: ResizeMode,
    /// For `centre-crop`: the shorter side before cropping (ImageNet's classic 256 for 224).
    #[serde(default)]
    pub resize_shorter: Option<u32>,
    /// For `letterbox`: the grey level of the padding (YOLO uses 114).
    #[serde(default = "default_pad")]
    pub pad_value: u8,
    /// Per-channel mean, applied after scaling pixels to 0..1.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, applied after the mean.
    pub std: [f32; 3],
}

fn default_pad() -> u8 {
    114
}

fn default_true() -> bool {
    true
}

/// The `[output]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output tensor name as stored in the ONNX graph.
    pub name: String,
    /// Number of model classes (the last output dimension).
    pub classes: usize,
    /// How raw outputs become probabilities.
    pub activation: Activation,
    /// Detectors: overlap (IoU) above which the weaker of two same-label boxes is dropped.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Detectors: most boxes kept per image.
    #[serde(default = "default_max_boxes")]
    pub max_boxes: usize,
}

fn default_nms_iou() -> f32 {
    0.45
}

fn default_max_boxes() -> usize {
    100
}

/// One tusk label: a group of model classes whose probabilities are summed, and its threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// tusk's name for it (`ivory`, `pangolin_scales`, `live_reptile`, …).
    pub name: String,
    /// Model class indices summed into this label.
    pub classes: Vec<usize>,
    /// Score at or above which the label counts as detected.
    pub threshold: f32,
}

/// A whole `model.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Model name, unique among loaded models; keys the scores in results.
    pub name: String,
    /// Version string; a new version makes tusk redo objects.
    pub version: String,
    /// What the model does.
    pub task: Task,
    /// The `.onnx` file name, relative to the manifest.
    pub file: String,
    /// sha256 of the `.onnx` file, lower-case hex.
    pub sha256: String,
    /// Object kinds this model applies to.
    pub kinds: Vec<Kind>,
    /// Whether a scan runs it without being asked: `false` keeps a model available through
    /// `--model NAME` without running it on every object (the ImageNet baseline, for example).
    #[serde(default = "default_true")]
    pub default: bool,
    /// Free text: where the weights come from and under which licence.
    #[serde(default)]
    pub source: Option<String>,
    /// Input tensor and preprocessing.
    pub input: InputSpec,
    /// Output tensor and activation.
    pub output: OutputSpec,
    /// tusk labels built from model classes.
    pub labels: Vec<LabelSpec>,
    /// Directory the manifest was read from (not part of the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ModelManifest {
    /// Reads and validates `path` (a `model.toml`).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of a `model.toml`; `path` names it in errors, and its
    /// folder is where the `.onnx` file is looked for.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let mut manifest: ModelManifest =
            toml::from_str(text).map_err(|e| ModelError::Manifest {
                path: path.to_path_buf(),
                message: e.to_string().replace('\n', " "),
            })?;
        manifest.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Path of the `.onnx` file.
    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |field: &str, message: String| ModelError::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        if self.task == Task::Detect && self.output.activation == Activation::Softmax {
            return Err(bad("output.activation", "a detector's class scores are `none` (already probabilities) or `sigmoid`".into()));
        }
        if !(0.0..=1.0).contains(&self.output.nms_iou) || self.output.max_boxes == 0 {
            return Err(bad("output.nms_iou", "nms_iou must be within 0..=1 and max_boxes positive".into()));
        }
        if self.input.width == 0 || self.input.height == 0 {
            return Err(bad("input.width", "input size must be positive".into()));
        }
        if self.input.std.contains(&0.0) {
            return Err(bad("input.std", "standard deviation must not be 0".into()));
        }
        if self.input.resize == ResizeMode::CentreCrop {
            match self.input.resize_shorter {
                Some(s) if s >= self.input.width.max(self.input.height) => {}
                _ => {
                    return Err(bad(
                        "input.resize_shorter",
                        "centre-crop needs resize_shorter ≥ the input size".into(),
                    ))
                }
            }
        }
        if self.labels.is_empty() {
            return Err(bad("labels", "at least one label is needed".into()));
        }
        for (i, label) in self.labels.iter().enumerate() {
            let field = format!("labels[{i}]");
            if label.classes.is_empty() {
                return Err(bad(&field, format!("label `{}` has no classes", label.name)));
            }
            if let Some(c) = label.classes.iter().find(|c| **c >= self.output.classes) {
                return Err(bad(
                    &field,
                    format!("class {c} is outside the model's {} classes", self.output.classes),
                ));
            }
            if !(0.0..=1.0).contains(&label.threshold) {
                return Err(bad(&field, "threshold must be within 0..=1".into()));
            }
            if self.labels[..i].iter().any(|l| l.name == label.name) {
                return Err(bad(&field, format!("label `{}` appears twice", label.name)));
            }
        }
        Ok(())
    }

    /// Verifies the `.onnx` file's sha256 against the manifest and returns its bytes.
    pub fn read_checked_onnx(&self) -> Result<Vec<u8>, ModelError> {
        let path = self.onnx_path();
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(ModelError::Field {
                path: self.dir.join("model.toml"),
                field: "sha256".into(),
                message: format!("{} has sha256 {actual}, the manifest says {}", path.display(), self.sha256),
            });
        }
        Ok(bytes)
    }
}

/// Finds every `*/model.toml` directly under `dir`, sorted by path.
pub fn discover(dir: &Path) -> Result<Vec<ModelManifest>, ModelError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("model.toml"))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let manifests = paths.iter().map(|p| ModelManifest::load(p)).collect::<Result<Vec<_>, _>>()?;
    for (i, m) in manifests.iter().enumerate() {
        if manifests[..i].iter().any(|o| o.name == m.name) {
            return Err(ModelError::Field {
                path: m.dir.join("model.toml"),
                field: "name".into(),
                message: format!("two models are named `{}`", m.name),
            });
        }
    }
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XRAY: &str = include_str!("../../../models/xray-v1/model.toml");

    fn check(text: &str) -> Result<ModelManifest, ModelError> {
        let m: ModelManifest = toml::from_str(text).expect("parses");
        m.validate(Path::new("model.toml")).map(|_| m)
    }

    fn field_of(e: ModelError) -> String {
        match e {
            ModelError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn shipped_detector_manifest_is_valid_with_its_nms_settings() {
        let m = check(XRAY).unwrap();
        assert_eq!((m.task, m.input.resize, m.output.nms_iou, m.output.max_boxes), (Task::Detect, ResizeMode::Letterbox, 0.5, 100));
        let defaults = check(&XRAY.replace("nms_iou = 0.5\n", "").replace("max_boxes = 100\n", "")).unwrap();
        assert_eq!((defaults.output.nms_iou, defaults.output.max_boxes), (0.45, 100));
    }

    #[test]
    fn detector_manifest_mistakes_name_the_field() {
        let softmax = XRAY.replace("activation = \"none\"", "activation = \"softmax\"");
        assert_eq!(field_of(check(&softmax).unwrap_err()), "output.activation");
        assert_eq!(field_of(check(&XRAY.replace("nms_iou = 0.5", "nms_iou = 1.5")).unwrap_err()), "output.nms_iou");
        assert_eq!(field_of(check(&XRAY.replace("classes = [2]", "classes = [3]")).unwrap_err()), "labels[2]");
    }
}
