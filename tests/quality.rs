//! Model quality on the real photos in ../shared/datasets/listing (not committed: licences).
//! Not part of `cargo test`; `scripts/quality.sh` runs it and CI runs that script. It fails
//! loudly when the data is missing.
//!
//! The ImageNet baseline's `live_reptile`: recall on the reptile photos (ImageNet's own sample
//! photos left out: the model may have trained on them) and false-positive rate on the
//! marketplace product photos, at the manifest's threshold, through the real `tusk scan`.

mod common;

use std::collections::HashMap;
use std::io::Write;

/// Floors set from the first measurement (2026-11-30, threshold 0.5: recall 0.785 = 1324/1686,
/// false-positive rate 0.0117 = 56/4785), with a small margin: a drop below them is a regression.
const MIN_RECALL: f64 = 0.77;
const MAX_FPR: f64 = 0.015;

#[test]
fn imagenet_live_reptile_recall_and_false_positive_rate() {
    let listing = common::root().join("../shared/datasets/listing");
    let labels = listing.join("labels.csv");
    assert!(
        labels.is_file(),
        "model-quality data is missing: expected {} (the shared datasets folder beside the repository)",
        labels.display()
    );
    let text = std::fs::read_to_string(&labels).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("quality.jsonl");
    let mut out = std::fs::File::create(&manifest).unwrap();
    let mut truth: HashMap<String, bool> = HashMap::new();
    for line in text.lines().skip(1) {
        let fields = split_csv(line);
        let (file, label, source) = (&fields[0], &fields[1], &fields[4]);
        let positive = match label.as_str() {
            "reptile" if !source.contains("imagenet") => true,
            "product" => false,
            _ => continue,
        };
        let uri = listing.join(file).display().to_string();
        writeln!(out, "{}", serde_json::json!({"uri": uri, "platform": "shared-listing"})).unwrap();
        truth.insert(uri, positive);
    }
    drop(out);
    let positives = truth.values().filter(|p| **p).count();
    let negatives = truth.len() - positives;
    assert!(positives > 1000 && negatives > 4000, "{positives} reptile / {negatives} product photos found");

    let db = dir.path().join("q.db");
    let jsonl = dir.path().join("q.jsonl");
    let stdout = common::scan_ok(&manifest, &db, &["--jsonl", jsonl.to_str().unwrap(), "--model", "imagenet-mobilenetv2"]);
    eprintln!("{stdout}");
    let threshold = 0.5;
    let (mut tp, mut fp, mut failed) = (0usize, 0usize, 0usize);
    let mut seen = 0usize;
    for l in common::jsonl(&jsonl) {
        let uri = l["uri"].as_str().unwrap();
        let positive = truth[uri];
        seen += 1;
        if !l["failure"].is_null() {
            failed += 1;
            continue;
        }
        let score = l["scores"]["imagenet-mobilenetv2"]["live_reptile"].as_f64().unwrap();
        match (positive, score >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            _ => {}
        }
    }
    assert_eq!(seen, truth.len(), "every photo has a record");
    let recall = tp as f64 / positives as f64;
    let fpr = fp as f64 / negatives as f64;
    println!(
        "quality: imagenet-mobilenetv2 live_reptile @ {threshold}: recall {recall:.3} ({tp}/{positives} reptile photos), \
         false-positive rate {fpr:.4} ({fp}/{negatives} product photos), {failed} failed"
    );
    assert_eq!(failed, 0, "no photo of the shared set should fail to decode");
    assert!(recall >= MIN_RECALL, "recall {recall:.3} below the floor {MIN_RECALL}");
    assert!(fpr <= MAX_FPR, "false-positive rate {fpr:.4} above the ceiling {MAX_FPR}");
}

/// Splits one CSV line with double-quoted fields.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                fields.last_mut().unwrap().push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}
