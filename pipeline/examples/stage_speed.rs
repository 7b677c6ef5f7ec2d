//! Times the per-image stages, one thread: decode, hash, model preprocessing, and what re-post
//! verification adds to a listing photo (views with their hashes, ORB features of the photo and
//! its mirror image).
//! `cargo run --release --example stage_speed [IMAGES_DIR] [MODEL_DIR]` (default: the demo photos
//! and models/listing-v1) prints microseconds per image for each.

use std::time::Instant;

use tusk::decode::{decode, DecodeLimits};
use tusk::hash::PerceptualHasher;
use tusk::infer::{preprocess, ModelManifest};
use tusk::reuse::features::FeatureExtractor;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let images = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| root.join("datasets/demo/images"));
    let model = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| root.join("models/listing-v1"));
    let manifest = ModelManifest::load(&model.join("model.toml")).expect("manifest");
    let files: Vec<Vec<u8>> = std::fs::read_dir(images)
        .expect("demo images")
        .take(200)
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    let limits = DecodeLimits::default();
    let rounds = if files.len() > 50 { 2 } else { 20 };
    let mut hasher = PerceptualHasher::new();
    let mut features = FeatureExtractor::new().expect("OpenCV ORB");
    let (mut t_decode, mut t_hash, mut t_prep, mut t_views, mut t_orb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut n = 0usize;
    for _ in 0..rounds {
        for bytes in &files {
            let t = Instant::now();
            let img = decode(bytes, &limits).expect("decode").rgb;
            t_decode += t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(hasher.hash(&img));
            t_hash += t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(preprocess::prepare(&img, &manifest.input));
            t_prep += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let (_, _, photo) = std::hint::black_box(hasher.hash_with_views(&img));
            t_views += t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(features.extract(&photo).expect("ORB"));
            t_orb += t.elapsed().as_secs_f64();
            n += 1;
        }
    }
    let us = |t: f64| t / n as f64 * 1e6;
    println!("{n} images: decode {:.0} µs, hash (trim, pHash, dHash, PDQ) {:.0} µs, preprocess {:.0} µs per image",
        us(t_decode), us(t_hash), us(t_prep));
    println!("re-post verification: hash with views (photo cut-out, centre crops) {:.0} µs (+{:.0} µs over hash), ORB features (photo + mirror) {:.0} µs per image",
        us(t_views), us(t_views - t_hash), us(t_orb));
}
