//! The machine's ceiling for a scan: what decoding and inference alone cost, each measured at full
//! speed on every core, with the decoder tusk uses and the model, batch size, sessions and threads
//! a default `tusk scan` uses (one session per core, one thread each, batches of 8). No pipeline
//! can skip either step, so `1 / (decode seconds per image + inference seconds per image)` is the
//! best images/s any pipeline could reach here.
//!
//! `cargo run --release --example ceiling -- IMAGES_DIR [MODEL_DIR] [--sessions N] [--threads N] [--batch B] [--hash-only]`

use std::path::PathBuf;
use std::time::Instant;

use tusk::decode::{decode, DecodeLimits};
use tusk::infer::{preprocess, Model, ModelManifest};

fn main() {
    let mut args = std::env::args().skip(1);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let (mut images, mut model_dir, mut sessions, mut threads, mut batch, mut hash_only) = (None, None, cores, 1, 8usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--sessions" => sessions = args.next().and_then(|v| v.parse().ok()).expect("--sessions N"),
            "--batch" => batch = args.next().and_then(|v| v.parse().ok()).expect("--batch N"),
            "--hash-only" => hash_only = true,
            _ if images.is_none() => images = Some(PathBuf::from(a)),
            _ => model_dir = Some(PathBuf::from(a)),
        }
    }
    let images = images.expect("usage: ceiling IMAGES_DIR [MODEL_DIR] [--threads N] [--batch B] [--hash-only]");
    let model_dir = model_dir.unwrap_or_else(|| PathBuf::from("models/listing-v1"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&images).expect("images dir").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    let files: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let n = files.len();

    // decoding alone, one thread per core, each taking every cores-th file
    let limits = DecodeLimits::default();
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..cores {
            let files = &files;
            s.spawn(move || {
                for bytes in files.iter().skip(k).step_by(cores) {
                    std::hint::black_box(decode(bytes, &limits).expect("decode"));
                }
            });
        }
    });
    let decode_s = t.elapsed().as_secs_f64() / n as f64;
    println!("ceiling: decode {:.2} ms per image on {cores} threads ({:.1} images/s)", decode_s * 1e3, 1.0 / decode_s);
    if hash_only {
        println!("ceiling: hash-only best {:.1} images/s", 1.0 / decode_s);
        return;
    }

    // inference alone: real preprocessed inputs; `sessions` sessions run whole batches in parallel
    let manifest = ModelManifest::load(&model_dir.join("model.toml")).expect("model.toml");
    let mut tensor = Vec::new();
    for bytes in files.iter().take(batch) {
        let img = decode(bytes, &limits).expect("decode").rgb;
        tensor.extend(preprocess::prepare(&img, &manifest.input).0);
    }
    let mut models: Vec<Model> = (0..sessions).map(|_| Model::load(&manifest, threads).expect("model")).collect();
    for m in &mut models {
        m.run(&tensor, batch).expect("warm-up");
    }
    let rounds = n.div_ceil(batch).div_ceil(sessions);
    let t = Instant::now();
    std::thread::scope(|s| {
        for m in &mut models {
            let tensor = &tensor;
            s.spawn(move || {
                for _ in 0..rounds {
                    std::hint::black_box(m.run(tensor, batch).expect("run"));
                }
            });
        }
    });
    let infer_s = t.elapsed().as_secs_f64() / (rounds * sessions * batch) as f64;
    println!(
        "ceiling: inference {:.2} ms per image ({}, batch {batch}, {sessions} sessions × {threads} threads; {:.1} images/s)",
        infer_s * 1e3,
        manifest.name,
        1.0 / infer_s
    );
    println!("ceiling: end-to-end best {:.1} images/s", 1.0 / (decode_s + infer_s));
}
