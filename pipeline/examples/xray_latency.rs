//! Single-scan latency of the X-ray path, one inference thread, one scan at a time: decode →
//! perceptual hashes → letterbox preprocessing → detector → boxes (thresholds, NMS, mapping back),
//! i.e. what `tusk scan --kind xray` does per object before storing it.
//! `cargo run --release --example xray_latency -- SCANS_DIR [MODEL_DIR] [ROUNDS]` prints p50/p99
//! of the whole path and the median of each stage, in milliseconds. Used by
//! scripts/bench/xray_latency.sh.

use std::time::Instant;

use tusk::decode::{decode, DecodeLimits};
use tusk::hash::PerceptualHasher;
use tusk::infer::detect::{self, DecodeParams};
use tusk::infer::{preprocess, Model, ModelManifest};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let scans = args.next().map(std::path::PathBuf::from).expect("usage: xray_latency SCANS_DIR [MODEL_DIR] [ROUNDS]");
    let model_dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| root.join("models/xray-v4"));
    let rounds: usize = args.next().map(|r| r.parse().expect("ROUNDS")).unwrap_or(3);
    let manifest = ModelManifest::load(&model_dir.join("model.toml")).expect("manifest");
    let mut model = Model::load(&manifest, 1).expect("model");
    let mut paths: Vec<_> = std::fs::read_dir(&scans).expect("scans dir").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    let files: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).expect("read")).collect();
    assert!(!files.is_empty(), "no scans in {}", scans.display());
    let limits = DecodeLimits::default();
    let mut hasher = PerceptualHasher::new();
    let floors: Vec<f32> = manifest.labels.iter().map(|l| l.threshold).collect();
    let params = DecodeParams { floor: 0.0, iou: manifest.output.nms_iou, max_boxes: manifest.output.max_boxes };
    let mut stages: [Vec<f64>; 5] = Default::default();
    let mut total = Vec::new();
    let (mut flagged, mut pixels) = (0usize, 0u64);
    // one untimed pass warms the session and the caches
    for round in 0..=rounds {
        for bytes in &files {
            let t0 = Instant::now();
            let img = decode(bytes, &limits).expect("decode").rgb;
            let t1 = Instant::now();
            std::hint::black_box(hasher.hash(&img));
            let t2 = Instant::now();
            let (tensor, placement) = preprocess::prepare(&img, &manifest.input);
            let t3 = Instant::now();
            let (outs, anchors) = model.run_detect(&tensor, 1).expect("run");
            let t4 = Instant::now();
            let hits = detect::decode(&outs[0], anchors, &manifest.labels, &floors, &params, &placement, img.dimensions());
            let t5 = Instant::now();
            if round == 0 {
                flagged += usize::from(!hits.is_empty());
                pixels += u64::from(img.width()) * u64::from(img.height());
                continue;
            }
            let ts = [t0, t1, t2, t3, t4, t5];
            for (k, s) in stages.iter_mut().enumerate() {
                s.push((ts[k + 1] - ts[k]).as_secs_f64() * 1e3);
            }
            total.push((t5 - t0).as_secs_f64() * 1e3);
        }
    }
    total.sort_by(f64::total_cmp);
    println!(
        "{} scans ({:.2} Mpixel on average), {} rounds, one inference thread; {} flagged",
        files.len(),
        pixels as f64 / files.len() as f64 / 1e6,
        rounds,
        flagged
    );
    println!("decode -> verdict: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", quantile(&total, 0.5), quantile(&total, 0.99), total[total.len() - 1]);
    for (name, mut s) in ["decode", "hash", "preprocess", "detector", "boxes"].into_iter().zip(stages) {
        s.sort_by(f64::total_cmp);
        println!("  {name:<10} median {:.2} ms", quantile(&s, 0.5));
    }
}
