//! `tusk eval` on the demo photos: its counts and metrics must agree with the scores that a
//! plain `tusk scan` of the same files writes, `--map` must move positives, and a missing file
//! must be reported as failed rather than silently dropped.

mod common;

use std::collections::HashMap;

/// The demo's own labels (datasets/demo/SOURCES.csv: `file,what,label,…`, files relative to
/// datasets/demo), plus `extra` lines.
fn demo_labels(dir: &std::path::Path, extra: &[&str]) -> std::path::PathBuf {
    let mut csv = std::fs::read_to_string(common::demo_dir().join("SOURCES.csv")).unwrap();
    for line in extra {
        csv.push_str(line);
        csv.push('\n');
    }
    let path = dir.join("labels.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn eval_json(labels: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let demo = common::demo_dir();
    let mut args = vec!["eval", demo.to_str().unwrap(), "--labels", labels.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = common::succeeded(common::tusk(&args), "tusk eval");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn eval_agrees_with_the_scores_scan_stores() {
    let dir = tempfile::tempdir().unwrap();
    let labels = demo_labels(dir.path(), &[]);
    let report = eval_json(&labels, &[]);
    let truth: HashMap<String, String> = tusk::eval::read_labels(&labels)
        .unwrap()
        .into_iter()
        .map(|l| (l.file.rsplit('/').next().unwrap().to_string(), l.label))
        .collect();

    // the same images through `tusk scan`
    let db = dir.path().join("scan.db");
    let jsonl = dir.path().join("scan.jsonl");
    common::scan_ok(&common::demo_dir().join("images"), &db, &["--jsonl", jsonl.to_str().unwrap()]);
    let lines = common::jsonl(&jsonl);
    assert_eq!(report["images"], lines.len());
    assert!(report["failed"].as_object().unwrap().is_empty());

    let models = report["models"].as_array().unwrap();
    assert!(!models.is_empty());
    for m in models {
        let name = m["model"].as_str().unwrap();
        assert_eq!(m["images"], lines.len(), "{name}");
        for (label, metrics) in m["labels"].as_object().unwrap() {
            let threshold = metrics["threshold"].as_f64().unwrap() as f32;
            let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
            let mut scored = Vec::new();
            for l in &lines {
                let file = l["uri"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
                let score = l["scores"][name][label].as_f64().unwrap() as f32;
                let positive = truth[&file] == *label;
                scored.push((score, positive));
                match (score >= threshold, positive) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    (false, false) => tn += 1,
                }
            }
            assert_eq!(
                [&metrics["tp"], &metrics["fp"], &metrics["fn"], &metrics["tn"]],
                [tp, fp, fn_, tn],
                "{name}/{label}: {metrics}"
            );
            if tp + fn_ > 0 {
                let ap = metrics["ap"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&ap), "{ap}");
                // AP is 1 exactly when every positive outranks every negative
                let lowest_pos = scored.iter().filter(|s| s.1).map(|s| s.0).fold(f32::MAX, f32::min);
                let highest_neg = scored.iter().filter(|s| !s.1).map(|s| s.0).fold(f32::MIN, f32::max);
                assert_eq!(ap == 1.0, lowest_pos > highest_neg, "{name}/{label}: AP {ap}");
            } else {
                assert!(metrics["ap"].is_null() && metrics["recall"].is_null());
            }
        }
        let by_label = m["flagged_by_dataset_label"].as_object().unwrap();
        let n: u64 = by_label.values().map(|c| c.as_object().unwrap().values().next().unwrap()[1].as_u64().unwrap()).sum();
        assert_eq!(n as usize, lines.len());
    }
}

#[test]
fn map_moves_positives_and_missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let labels = demo_labels(dir.path(), &["images/no_such_photo.jpg,gone,ivory,nowhere,none"]);
    let db = dir.path().join("eval.db");
    let db_arg = db.to_str().unwrap();
    let plain = eval_json(&labels, &["--db", db_arg, "--model", "listing-v1"]);
    let failed = plain["failed"].as_object().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed["images/no_such_photo.jpg"].as_str().unwrap().starts_with("read/"), "{failed:?}");

    // the 3 ceramic look-alikes counted as ivory: 3 more positives; `~ivory`: left out entirely
    let mapped = eval_json(&labels, &["--db", db_arg, "--model", "listing-v1", "--map", "ceramic=ivory"]);
    let ignored = eval_json(&labels, &["--db", db_arg, "--model", "listing-v1", "--map", "ceramic=~ivory"]);
    let counts = |r: &serde_json::Value| -> HashMap<&'static str, u64> {
        let m = &r["models"][0]["labels"]["ivory"];
        ["tp", "fp", "fn", "tn"].into_iter().map(|k| (k, m[k].as_u64().unwrap())).collect()
    };
    let (p, m, i) = (counts(&plain), counts(&mapped), counts(&ignored));
    let pos = |c: &HashMap<&str, u64>| c["tp"] + c["fn"];
    let neg = |c: &HashMap<&str, u64>| c["fp"] + c["tn"];
    assert_eq!(pos(&m), pos(&p) + 3);
    assert_eq!(neg(&m) + 3, neg(&p));
    assert_eq!(pos(&i), pos(&p));
    assert_eq!(neg(&i) + 3, neg(&p));
    assert_eq!(plain["models"][0]["flagged_by_dataset_label"]["ceramic"]["ivory"][1], 3);
}

#[test]
fn bad_labels_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "path,class\na.jpg,ivory\n").unwrap();
    let images = common::demo_dir().join("images");
    let out = common::tusk(&["eval", images.to_str().unwrap(), "--labels", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no `file` column"), "{err}");
    let out = common::tusk(&["eval", images.to_str().unwrap(), "--labels", csv.to_str().unwrap(), "--map", "oops"]);
    assert_eq!(out.status.code(), Some(2));
}
