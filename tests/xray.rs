//! Parcel X-ray scans through the real pipeline with the default detector (models/xray-v4):
//! boxes land where the true objects are, in the store and the JSONL; negatives are not flagged;
//! 8-bit colour, 16-bit PNG and 16-bit TIFF scans all decode; review images are written for
//! flagged scans only; `tusk eval --boxes` measures boxes; a detector manifest that disagrees with
//! its model is refused with a clear error.
//!
//! The fixtures in tests/fixtures/xray are simulated parcels made for this project by
//! scripts/xray/synth.py's `simulated(np.random.default_rng([777, 2, i]), "test", 448)` for
//! i = 2, 15, 16, 17, 20, 28 (the test split's shape families, held-out ones included), saved as
//! `fx_{i}_{rendering}.png|.tiff`, with their true boxes in truth.csv. The six were picked from
//! the first 40 such scans as ones xray-v1 got right; xray-v3 and xray-v4, the defaults since, get them right
//! too (a regression check; the models' accuracy is measured by scripts/quality.sh on 600 test
//! scans and the real scans).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    common::root().join("tests/fixtures/xray")
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// file → true (label, box); files without wildlife map to an empty list.
fn truth() -> HashMap<String, Vec<(String, [f64; 4])>> {
    let text = std::fs::read_to_string(fixtures().join("truth.csv")).unwrap();
    let mut out: HashMap<String, Vec<(String, [f64; 4])>> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let entry = out.entry(f[0].to_string()).or_default();
        if !f[1].is_empty() {
            let b: Vec<f64> = f[2..6].iter().map(|v| v.parse().unwrap()).collect();
            entry.push((f[1].to_string(), [b[0], b[1], b[2], b[3]]));
        }
    }
    out
}

#[test]
fn scans_get_boxes_where_the_objects_are_and_review_images_for_flagged_ones_only() {
    let dir = tempfile::tempdir().unwrap();
    let (db, jsonl, overlay) = (dir.path().join("x.db"), dir.path().join("x.jsonl"), dir.path().join("review"));
    let out = common::scan_ok(
        &fixtures(),
        &db,
        &["--kind", "xray", "--jsonl", jsonl.to_str().unwrap(), "--overlay", overlay.to_str().unwrap()],
    );
    let truth = truth();
    assert!(out.contains(&format!("{} processed", truth.len())) && out.contains("0 failed"), "{out}");

    let lines = common::jsonl(&jsonl);
    assert_eq!(lines.len(), truth.len());
    let mut flagged_files = Vec::new();
    for l in &lines {
        let uri = l["uri"].as_str().unwrap();
        let file = uri.rsplit('/').next().unwrap();
        let want = &truth[file];
        let (w, h) = (l["width"].as_f64().unwrap(), l["height"].as_f64().unwrap());
        let dets = l["detections"].as_array().unwrap();
        assert_eq!(l["flagged"].as_bool().unwrap(), !dets.is_empty(), "{file}: flagged means a detection");
        for (label, b) in want {
            let found = dets.iter().any(|d| {
                let db: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                d["label"] == label.as_str() && iou([db[0], db[1], db[2], db[3]], *b) >= 0.5
            });
            assert!(found, "{file}: the {label} at {b:?} is not found: {dets:?}");
        }
        if want.is_empty() {
            assert!(dets.is_empty(), "{file} holds no wildlife but got {dets:?}");
        }
        for d in dets {
            assert_eq!(d["model"], "xray-v4");
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= w && b[3] <= h && b[0] < b[2] && b[1] < b[3], "{file}: {b:?}");
        }
        if !dets.is_empty() {
            flagged_files.push(tusk::overlay::file_name(uri));
        }
    }
    // the three formats are all among the found ones
    for ext in [".png", ".tiff"] {
        assert!(lines.iter().any(|l| l["flagged"] == true && l["uri"].as_str().unwrap().ends_with(ext)));
    }

    // store: boxes with coordinates, all at or above threshold in a scan
    let stored = common::count(&db, "SELECT COUNT(*) FROM detections WHERE x0 IS NOT NULL AND flagged = 1");
    let total: usize = lines.iter().map(|l| l["detections"].as_array().unwrap().len()).sum();
    assert_eq!(stored as usize, total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM detections WHERE flagged = 0"), 0);

    // review images: one per flagged scan, the scan's size, with box colour drawn on it
    let mut written: Vec<String> = std::fs::read_dir(&overlay).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    flagged_files.sort();
    assert_eq!(written, flagged_files);
    let first = image::open(overlay.join(&written[0])).unwrap().to_rgb8();
    assert!(first.pixels().any(|p| p.0 == [255, 0, 255]), "no box drawn");

    // a rerun finds everything done
    let again = common::scan_ok(&fixtures(), &db, &["--kind", "xray"]);
    assert!(again.contains("0 processed"), "{again}");
}

#[test]
fn eval_with_boxes_reports_ap_and_detection_rate() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.csv");
    let mut csv = String::from("file,label\n");
    for file in truth().keys() {
        csv.push_str(&format!("{file},synthetic\n"));
    }
    std::fs::write(&labels, csv).unwrap();
    let boxes = dir.path().join("boxes.csv");
    let truth_csv = std::fs::read_to_string(fixtures().join("truth.csv")).unwrap();
    let only_boxes: Vec<&str> = truth_csv.lines().filter(|l| !l.contains(",,")).collect();
    std::fs::write(&boxes, only_boxes.join("\n")).unwrap();
    let report = common::eval_boxes(&fixtures(), &labels, &boxes, None);
    let m = &report["models"][0];
    assert_eq!(m["model"], "xray-v4");
    for label in ["ivory", "pangolin_scales", "live_reptile"] {
        let b = &m["boxes"][label];
        assert_eq!(b["detection_rate"].as_f64(), Some(1.0), "{label}: {b}");
        let ap = b["ap50"].as_f64().unwrap();
        assert!(ap > 0.5 && ap <= 1.0, "{label}: {b}");
        // image level: the scans holding the label are positives
        assert!(m["labels"][label]["tp"].as_u64().unwrap() >= 1);
    }
    assert_eq!(m["boxes"]["live_reptile"]["boxes"], 2);
    assert_eq!(m["flagged_any_by_dataset_label"]["synthetic"], serde_json::json!([4, 6]));
    // 4 of 6 is a wide range: SciPy's beta quantiles give 22.3 % to 95.7 %
    let interval: Vec<f64> =
        m["flagged_any_interval_95"]["synthetic"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!((interval[0] - 0.222_78).abs() < 1e-4 && (interval[1] - 0.956_73).abs() < 1e-4, "{interval:?}");
}

/// Scans the fixtures as X-ray with a store in `dir` and `extra` arguments, asserting a setup
/// error (exit 2); returns stderr.
fn setup_error(dir: &std::path::Path, extra: &[&str]) -> String {
    let (db, source) = (dir.join("x.db"), fixtures());
    let mut args = vec!["scan", source.to_str().unwrap(), "--kind", "xray", "--db", db.to_str().unwrap(), "--progress", "off"];
    args.extend_from_slice(extra);
    let out = common::tusk(&args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_detector_manifest_that_disagrees_with_its_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let xray = models.join("xray-v4");
    std::fs::create_dir_all(&xray).unwrap();
    let src = common::models_dir().join("xray-v4");
    std::fs::copy(src.join("xray-v4.onnx"), xray.join("xray-v4.onnx")).unwrap();
    let toml = std::fs::read_to_string(src.join("model.toml")).unwrap();
    std::fs::write(xray.join("model.toml"), toml.replace("classes = 3", "classes = 4")).unwrap();
    let err = setup_error(dir.path(), &["--models", models.to_str().unwrap()]);
    assert!(err.contains("output.classes") && err.contains("4 + 4 classes"), "{err}");
}

#[test]
fn an_overlay_folder_that_cannot_be_made_is_a_clear_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("review");
    std::fs::write(&not_a_dir, b"a file").unwrap();
    let err = setup_error(dir.path(), &["--overlay", not_a_dir.to_str().unwrap()]);
    assert!(err.contains("overlay folder") && err.contains("review"), "{err}");
    assert!(!dir.path().join("x.db").exists(), "nothing is scanned before the setup error");
}
