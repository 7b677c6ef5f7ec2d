//! Inference: model manifests, preprocessing, and ONNX Runtime sessions.

pub mod detect;
pub mod manifest;
pub mod model;
pub mod preprocess;
pub mod resample;
pub mod runtime;

use std::path::PathBuf;

pub use manifest::ModelManifest;
pub use model::Model;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML for a model.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A manifest field is wrong or disagrees with the model file.
    #[error("{}: field `{field}`: {message}", path.display())]
    Field {
        /// The manifest.
        path: PathBuf,
        /// The field, as written in the manifest.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// ONNX Runtime's shared library is missing or could not be loaded.
    #[error("ONNX Runtime could not be loaded from {}: {message}; run scripts/setup-ort.sh", path.display())]
    Runtime {
        /// The library path that was tried.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// ONNX Runtime failed while creating a session or running it.
    #[error("{model}: {source}")]
    Ort {
        /// The model's name.
        model: String,
        /// ort's error.
        source: ort::Error,
    },
}
