//! Preprocessing parity: tusk's decode → resize → normalise → ONNX Runtime path must give the
//! same probabilities as the Python reference (Pillow + numpy + onnxruntime,
//! `scripts/parity_reference.py`) computed on this machine, on the real demo images.

mod common;

use tusk::decode::{decode, DecodeLimits};
use tusk::infer::{preprocess, Model, ModelManifest};

#[test]
fn imagenet_scores_match_python_reference_within_1e_3() {
    scores_match_python_reference("imagenet-mobilenetv2");
}

#[test]
fn listing_v1_scores_match_python_reference_within_1e_3() {
    scores_match_python_reference("listing-v1");
}

#[test]
fn listing_v2_scores_match_python_reference_within_1e_3() {
    scores_match_python_reference("listing-v2");
}

#[test]
fn listing_v3_scores_match_python_reference_within_1e_3() {
    scores_match_python_reference("listing-v3");
}

/// Compares every output probability, the top class and the label scores with the reference
/// that `scripts/parity_reference.py models/NAME` computes on this machine.
fn scores_match_python_reference(name: &str) {
    let reference = common::python_reference(name);
    let manifest = ModelManifest::load(&common::models_dir().join(name).join("model.toml")).unwrap();
    let mut model = Model::load(&manifest, 1).unwrap();
    let images = reference["images"].as_array().unwrap();
    assert!(images.len() >= 10, "the reference needs at least 10 real images");
    let mut worst = 0f32;
    for img in images {
        let file = img["file"].as_str().unwrap();
        let bytes = std::fs::read(common::root().join(file)).unwrap();
        let decoded = decode(&bytes, &DecodeLimits::default()).unwrap();
        let (tensor, _) = preprocess::prepare(&decoded.rgb, &manifest.input);
        let probs = model.run(&tensor, 1).unwrap().remove(0);
        let expected: Vec<f32> = img["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(probs.len(), expected.len());
        for (class, (got, want)) in probs.iter().zip(&expected).enumerate() {
            let diff = (got - want).abs();
            worst = worst.max(diff);
            assert!(diff <= 1e-3, "{file}: class {class}: tusk {got} vs python {want}");
        }
        // The top class must agree, unless the reference's best classes are tied within the
        // tolerance (then either of them may come first).
        let ours = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let best = img["top5"][0][1].as_f64().unwrap();
        let tied: Vec<usize> = img["top5"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| best - c[1].as_f64().unwrap() <= 2e-3)
            .map(|c| c[0].as_u64().unwrap() as usize)
            .collect();
        assert!(tied.contains(&ours), "{file}: top-1 class {ours}, reference {tied:?}");
        let labels = model.label_scores(&probs);
        for (spec, got) in manifest.labels.iter().zip(labels) {
            let want = img["labels"][&spec.name].as_f64().unwrap() as f32;
            assert!((got - want).abs() <= 1e-3, "{file}: {}: {got} vs {want}", spec.name);
        }
    }
    eprintln!(
        "parity {name}: {} images, largest probability difference {worst:.2e} (Python onnxruntime {})",
        images.len(),
        reference["onnxruntime"]
    );
}

#[test]
fn batched_inference_equals_one_by_one() {
    let manifest = ModelManifest::load(&common::models_dir().join("imagenet-mobilenetv2/model.toml")).unwrap();
    let mut model = Model::load(&manifest, 1).unwrap();
    let mut batch = Vec::new();
    let mut singles = Vec::new();
    for name in ["skimage_chelsea.png", "skimage_coffee.jpg", "met_ivory_41975.jpg"] {
        let bytes = std::fs::read(common::demo_dir().join("images").join(name)).unwrap();
        let rgb = decode(&bytes, &DecodeLimits::default()).unwrap().rgb;
        let (t, _) = preprocess::prepare(&rgb, &manifest.input);
        singles.push(model.run(&t, 1).unwrap().remove(0));
        batch.extend(t);
    }
    let batched = model.run(&batch, 3).unwrap();
    for (a, b) in batched.iter().zip(&singles) {
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff <= 1e-5, "batch and single runs differ by {diff}");
    }
}

#[test]
fn jpeg_decoding_equals_pillows_libjpeg_turbo_bit_for_bit() {
    // Pillow's decoding of each demo JPEG, committed as PNG by scripts/parity_reference.py.
    let fixtures = common::root().join("tests/fixtures/parity");
    let mut n = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let png = entry.unwrap().path();
        let jpg = common::demo_dir().join("images").join(png.file_stem().unwrap()).with_extension("jpg");
        let ours = decode(&std::fs::read(&jpg).unwrap(), &DecodeLimits::default()).unwrap().rgb;
        let pillow = image::open(&png).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), pillow.dimensions(), "{}", jpg.display());
        let differing = ours.as_raw().iter().zip(pillow.as_raw()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{}: {differing} values differ from Pillow's decoding", jpg.display());
        n += 1;
    }
    assert!(n >= 10, "{n} JPEGs compared");
}
