//! A loaded model: its manifest, a checked ONNX Runtime session, and the mapping from raw
//! outputs to tusk labels. Each inference worker owns its own `Model` (`Session::run` takes
//! `&mut self`).

use ort::session::Session;
use ort::value::TensorRef;

use super::manifest::{Activation, Layout, ModelManifest, Task};
use super::{runtime, ModelError};

/// A model ready to run.
pub struct Model {
    /// The manifest it was loaded from.
    pub manifest: ModelManifest,
    session: Session,
    /// Largest batch the graph accepts (its batch dimension, or unbounded when dynamic).
    pub max_batch: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.manifest.name).finish()
    }
}

impl Model {
    /// Checks the file's sha256, opens a session with `threads` intra-op threads, and checks
    /// the graph's input and output names and shapes against the manifest.
    pub fn load(manifest: &ModelManifest, threads: usize) -> Result<Self, ModelError> {
        let env = runtime::init()?;
        let bytes = manifest.read_checked_onnx()?;
        let ort_err = |source: ort::Error| ModelError::Ort {
            model: manifest.name.clone(),
            source,
        };
        let session = Session::builder(env)
            .map_err(ort_err)?
            .with_intra_threads(threads.max(1))
            .map_err(|e| ort_err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(e.into()))?
            // no pre-planned memory pattern per input shape: it held ~200 MB per session at
            // batch 8 (EfficientNet-Lite0), and tusk runs one session per core
            .with_memory_pattern(false)
            .map_err(|e| ort_err(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(ort_err)?;
        let max_batch = check_io(manifest, &session)?;
        Ok(Self {
            manifest: manifest.clone(),
            session,
            max_batch,
        })
    }

    /// Runs a batch of `n` preprocessed images laid end to end in `batch`; returns the output
    /// tensor's shape and data.
    fn forward(&mut self, batch: &[f32], n: usize) -> Result<(Vec<i64>, Vec<f32>), ModelError> {
        let spec = &self.manifest.input;
        let (h, w) = (spec.height as usize, spec.width as usize);
        let shape = match spec.layout {
            Layout::Nchw => [n, 3, h, w],
            Layout::Nhwc => [n, h, w, 3],
        };
        let name = self.manifest.name.clone();
        let ort_err = |source: ort::Error| ModelError::Ort {
            model: name.clone(),
            source,
        };
        let input = TensorRef::from_array_view((shape, batch)).map_err(ort_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(ort_err)?;
        let value = &outputs[self.manifest.output.name.as_str()];
        let (out_shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err)?;
        Ok((out_shape.to_vec(), data.to_vec()))
    }

    fn shape_error(&self, message: String) -> ModelError {
        ModelError::Field {
            path: self.manifest.dir.join("model.toml"),
            field: "output.classes".into(),
            message,
        }
    }

    /// Runs a batch of `n` preprocessed images laid end to end in `batch`, and returns each
    /// image's class probabilities (after the manifest's activation).
    pub fn run(&mut self, batch: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let (out_shape, data) = self.forward(batch, n)?;
        let classes = self.manifest.output.classes;
        if data.len() != n * classes {
            return Err(self.shape_error(format!("the model returned shape {out_shape:?} for a batch of {n}")));
        }
        let activation = self.manifest.output.activation;
        Ok(data.chunks_exact(classes).map(|row| activate(row, activation)).collect())
    }

    /// Runs a detector over a batch: returns each image's `[4 + classes, anchors]` slice (class
    /// rows after the manifest's activation) and the number of anchors.
    pub fn run_detect(&mut self, batch: &[f32], n: usize) -> Result<(Vec<Vec<f32>>, usize), ModelError> {
        let (out_shape, mut data) = self.forward(batch, n)?;
        let rows = 4 + self.manifest.output.classes;
        let fits = out_shape.len() == 3 && out_shape[0] as usize == n && out_shape[1] as usize == rows;
        if !fits {
            return Err(self.shape_error(format!(
                "a detector must return [batch, 4 + classes = {rows}, anchors]; it returned {out_shape:?} for a batch of {n}"
            )));
        }
        let anchors = out_shape[2] as usize;
        if self.manifest.output.activation == Activation::Sigmoid {
            for image in data.chunks_exact_mut(rows * anchors) {
                for v in &mut image[4 * anchors..] {
                    *v = 1.0 / (1.0 + (-*v).exp());
                }
            }
        }
        Ok((data.chunks_exact(rows * anchors).map(<[f32]>::to_vec).collect(), anchors))
    }

    /// Sums each label's classes: one score per manifest label, in manifest order.
    pub fn label_scores(&self, probabilities: &[f32]) -> Vec<f32> {
        self.manifest
            .labels
            .iter()
            .map(|l| l.classes.iter().map(|c| probabilities[*c]).sum::<f32>().min(1.0))
            .collect()
    }
}

/// Applies the output activation to one image's raw outputs.
fn activate(row: &[f32], activation: Activation) -> Vec<f32> {
    match activation {
        Activation::None => row.to_vec(),
        Activation::Sigmoid => row.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
        Activation::Softmax => {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            exps.into_iter().map(|e| e / sum).collect()
        }
    }
}

/// Compares the graph's real inputs and outputs with the manifest; returns the batch limit.
fn check_io(m: &ModelManifest, session: &Session) -> Result<usize, ModelError> {
    let path = m.dir.join("model.toml");
    let bad = |field: &str, message: String| ModelError::Field {
        path: path.clone(),
        field: field.into(),
        message,
    };
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == m.input.name)
        .ok_or_else(|| {
            let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            bad("input.name", format!("the model has no input `{}` (it has {names:?})", m.input.name))
        })?;
    let shape = input
        .dtype()
        .tensor_shape()
        .ok_or_else(|| bad("input.name", "the input is not a tensor".into()))?;
    let (h, w) = (m.input.height as i64, m.input.width as i64);
    let expected = match m.input.layout {
        Layout::Nchw => [-1, 3, h, w],
        Layout::Nhwc => [-1, h, w, 3],
    };
    let fits = shape.len() == 4
        && shape.iter().zip(expected).skip(1).all(|(got, want)| *got == want || *got < 0);
    if !fits {
        return Err(bad(
            "input",
            format!("the model's input shape is {:?}, the manifest implies {expected:?}", &shape[..]),
        ));
    }
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == m.output.name)
        .ok_or_else(|| {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            bad("output.name", format!("the model has no output `{}` (it has {names:?})", m.output.name))
        })?;
    if let Some(oshape) = output.dtype().tensor_shape() {
        if m.task == Task::Detect {
            let rows = oshape.get(1).copied().unwrap_or(-1);
            if oshape.len() != 3 || (rows >= 0 && rows as usize != 4 + m.output.classes) {
                return Err(bad(
                    "output.classes",
                    format!("a detector's output must be [batch, 4 + {} classes, anchors]; the model's is {:?}", m.output.classes, &oshape[..]),
                ));
            }
            return Ok(if shape[0] > 0 { shape[0] as usize } else { usize::MAX });
        }
        let last = oshape.last().copied().unwrap_or(-1);
        if last >= 0 && last as usize != m.output.classes {
            return Err(bad(
                "output.classes",
                format!("the model outputs {last} classes, the manifest says {}", m.output.classes),
            ));
        }
    }
    Ok(if shape[0] > 0 { shape[0] as usize } else { usize::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let p = activate(&[1.0, 2.0, 3.0], Activation::Softmax);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
    }

    #[test]
    fn sigmoid_of_zero_is_half() {
        assert_eq!(activate(&[0.0], Activation::Sigmoid), vec![0.5]);
    }
}
