//! Finds and loads ONNX Runtime's shared library (`load-dynamic`), once per process.
//!
//! Search order: `$ORT_DYLIB_PATH`; `libonnxruntime.so` beside the executable; the path that
//! `.cargo/config.toml` gave at build time (`.ort/lib/` of the checkout, filled by
//! `scripts/setup-ort.sh`); `/usr/local/lib/libonnxruntime.so` (the Docker image).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::ModelError;

/// Candidate library paths, most specific first.
pub fn candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        // An explicit choice is final: falling back would hide a typo.
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push(dir.join("libonnxruntime.so"));
    }
    if let Some(p) = option_env!("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    out.push(PathBuf::from("/usr/local/lib/libonnxruntime.so"));
    out
}

/// Loads ONNX Runtime the first time it is called; later calls return the first outcome.
pub fn init() -> Result<&'static ort::environment::Environment, ModelError> {
    static ENV: OnceLock<Result<ort::environment::Environment, (PathBuf, String)>> = OnceLock::new();
    let outcome = ENV.get_or_init(|| {
        let paths = candidates();
        let path = paths
            .iter()
            .find(|p| p.exists())
            .unwrap_or(&paths[0])
            .clone();
        if !path.exists() {
            return Err((path, "file not found".into()));
        }
        let builder = ort::init_from(&path).map_err(|e| (path.clone(), e.to_string()))?;
        builder.with_name("tusk").build().map_err(|e| (path, e.to_string()))
    });
    match outcome {
        Ok(env) => Ok(env),
        Err((path, message)) => Err(ModelError::Runtime {
            path: path.clone(),
            message: message.clone(),
        }),
    }
}
