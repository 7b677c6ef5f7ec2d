//! Model quality on the real photos in ../shared/datasets/listing (not committed: licences).
//! Not part of `cargo test`; `scripts/quality.sh` runs it and CI runs that script. It fails
//! loudly when the data is missing.
//!
//! - listing-v1 (the default listing model), listing-v2 and listing-v3: `tusk eval` on each one's
//!   held-out test split and on the held-out pangolin-scale renders must reproduce the model card's Python
//!   numbers (models/<name>/metrics.json) within 0.5 percentage points, and stay above floors.
//! - The ImageNet baseline's `live_reptile`: recall on the reptile photos (ImageNet's own sample
//!   photos left out: the model may have trained on them) and false-positive rate on the
//!   marketplace product photos, at the manifest's threshold, through the real `tusk scan`.

mod common;

use std::collections::HashMap;
use std::io::Write;

/// Floors set from the first measurement (2026-11-30, threshold 0.5: recall 0.785 = 1324/1686,
/// false-positive rate 0.0117 = 56/4785, on an AVX2 CPU without AVX-512 VNNI), with a small
/// margin: a drop below them is a regression. The model is int8, and ONNX Runtime's int8 kernels
/// saturate without VNNI: on an Intel Xeon with AVX-512 VNNI (2026-12-01) the same scan gives
/// recall 0.850 (1433/1686) and 0.0079 (38/4785). The floors hold on both.
const MIN_RECALL: f64 = 0.77;
const MAX_FPR: f64 = 0.015;

/// Floors per label (recall, precision), set from the first measurement (ivory 0.894 / 0.852,
/// pangolin_scales 0.873 / 0.996, live_reptile 0.881 / 1.0) with a small margin;
/// pangolin_scales is measured on the held-out renders, the others on the real test split.
const FLOORS: [(&str, f64, f64); 3] = [("ivory", 0.87, 0.82), ("pangolin_scales", 0.85, 0.97), ("live_reptile", 0.86, 0.97)];

/// listing-v2's floors, set the same way from its first measurement (2026-12-02: ivory 0.888 /
/// 0.781, pangolin_scales 0.887 / 0.993, live_reptile 0.980 / 0.980; see its model card).
const FLOORS_V2: [(&str, f64, f64); 3] = [("ivory", 0.86, 0.75), ("pangolin_scales", 0.86, 0.97), ("live_reptile", 0.95, 0.95)];

/// listing-v3's floors, the same way (2026-12-03: ivory 0.888 / 0.822, pangolin_scales 0.850 /
/// 0.996, live_reptile 0.980 / 0.984); it is measured on listing-v2's test split.
const FLOORS_V3: [(&str, f64, f64); 3] = [("ivory", 0.86, 0.79), ("pangolin_scales", 0.82, 0.97), ("live_reptile", 0.95, 0.95)];

/// How `tusk eval` maps the dataset's labels to tusk's (the rule the training script uses).
const LISTING_MAP: &str = "ivory_composite=ivory,ivory_painting=~ivory,reptile=live_reptile";

/// Runs `tusk eval --json` with `model` and returns the report of that one model.
fn eval(source: &std::path::Path, labels: &std::path::Path, model: &str) -> serde_json::Value {
    assert!(labels.is_file(), "{} is missing", labels.display());
    let out = common::succeeded(
        common::tusk(&[
            "eval",
            source.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--map",
            LISTING_MAP,
            "--model",
            model,
            "--json",
        ]),
        "tusk eval",
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["failed"].as_object().unwrap().is_empty(), "{}", report["failed"]);
    report["models"][0].clone()
}

/// Asserts that every metric tusk measured equals the model card's within 0.5 points.
fn assert_matches_card(model: &str, set: &str, rust: &serde_json::Value, card: &serde_json::Value) {
    let python = &card["sets"][set];
    assert_eq!(rust["images"], python["images"], "{set}: image count");
    for (label, py) in python["labels"].as_object().unwrap() {
        let rs = &rust["labels"][label];
        for metric in ["precision", "recall", "fpr", "ap"] {
            let (a, b) = (&rs[metric], &py[metric]);
            println!("quality: {model} {set} {label} {metric}: tusk {a} python {b}");
            match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 0.005, "{set} {label} {metric}: tusk {a} vs card {b}"),
                (None, None) => {}
                _ if metric == "precision" => {} // nothing flagged on one side: no precision
                _ => panic!("{set} {label} {metric}: tusk {a} vs card {b}"),
            }
        }
        if let Some([k, n]) = python["flagged_by_source_label"]["product"][label].as_array().map(|v| [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]) {
            let cell = &rust["flagged_by_dataset_label"]["product"][label];
            let (rk, rn) = (cell[0].as_f64().unwrap(), cell[1].as_f64().unwrap());
            assert_eq!(rn, n);
            assert!((rk / rn - k / n).abs() <= 0.005, "{set} {label} product FPR: tusk {rk}/{rn} vs card {k}/{n}");
        }
    }
}

#[test]
fn listing_v1_reproduces_its_model_card() {
    listing_reproduces_its_model_card("listing-v1", "listing-v1", &FLOORS);
}

#[test]
fn listing_v2_reproduces_its_model_card() {
    listing_reproduces_its_model_card("listing-v2", "listing-v2", &FLOORS_V2);
}

#[test]
fn listing_v3_reproduces_its_model_card() {
    listing_reproduces_its_model_card("listing-v3", "listing-v2", &FLOORS_V3);
}

/// `tusk eval` with `model` on the test split it was measured on (datasets/<split>/test.csv) and
/// on the pangolin-scale test renders equals models/<model>/metrics.json and stays above `floors`.
fn listing_reproduces_its_model_card(model: &str, split: &str, floors: &[(&str, f64, f64)]) {
    let root = common::root();
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(format!("models/{model}/metrics.json"))).unwrap()).unwrap();
    let listing = root.join("../shared/datasets/listing");
    let real = eval(&listing, &root.join(format!("datasets/{split}/test.csv")), model);
    assert_matches_card(model, "test", &real, &card);
    let renders = root.join(".cache/pangolin");
    let rendered = eval(&renders, &renders.join("test.csv"), model);
    assert_matches_card(model, "render_test", &rendered, &card);

    for &(label, min_recall, min_precision) in floors {
        let m = &real["labels"][label];
        let m = if label == "pangolin_scales" { &rendered["labels"][label] } else { m };
        let (recall, precision) = (m["recall"].as_f64().unwrap(), m["precision"].as_f64().unwrap());
        assert!(recall >= min_recall && precision >= min_precision, "{model} {label}: recall {recall}, precision {precision}");
        let product = &real["flagged_by_dataset_label"]["product"][label];
        let fpr = product[0].as_f64().unwrap() / product[1].as_f64().unwrap();
        assert!(fpr <= 0.02, "{model} {label}: {fpr} of product photos flagged");
    }
}

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
        let fields = tusk::eval::csv_fields(line);
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

/// Floors for xray-v1, set from its first measurement (2026-11-30: detection rate ivory 0.702,
/// pangolin_scales 0.783, live_reptile 0.647; alarm rate on real scans that were no training
/// background 53/1427 = 3.7 %) with a small margin: a drop below them is a regression. They are
/// below the goals (detection ≥ 90 %, alarms ≤ 2 %); see the model card.
const XRAY_V1_FLOORS: [(&str, f64); 3] = [("ivory", 0.68), ("pangolin_scales", 0.76), ("live_reptile", 0.62)];
const XRAY_V1_MAX_ALARM_RATE: f64 = 0.045;
/// Floors for xray-v2, from its measurement on its own test set (2026-12-03: detection rate ivory
/// 0.579, pangolin_scales 0.753, live_reptile 0.631; real scans flagged, validation rows included,
/// 20/1070 = 1.9 %) with the same small margin.
const XRAY_V2_FLOORS: [(&str, f64); 3] = [("ivory", 0.56), ("pangolin_scales", 0.73), ("live_reptile", 0.61)];
const XRAY_V2_MAX_ALARM_RATE: f64 = 0.03;

/// Floors for xray-v3 (the default until xray-v4), from its measurement on its own test set (2026-12-04: detection
/// rate ivory 0.844, pangolin_scales 0.954, live_reptile 0.831; real scans flagged, validation rows
/// included, 25/1070 = 2.3 %, of the 845 test scans 21 = 2.5 %) with the same small margin.
const XRAY_V3_FLOORS: [(&str, f64); 3] = [("ivory", 0.82), ("pangolin_scales", 0.93), ("live_reptile", 0.81)];
const XRAY_V3_MAX_ALARM_RATE: f64 = 0.03;
/// Floors for xray-v4, the default, from its measurement on xray-v3's test split rendered without
/// the render shortcut (2026-12-04: detection rate ivory 0.754, pangolin_scales 0.848, live_reptile
/// 0.737; real scans flagged, validation rows included, 22/1070 = 2.1 %, of the 845 test scans
/// 18 = 2.1 %) with the same small margin.
const XRAY_V4_FLOORS: [(&str, f64); 3] = [("ivory", 0.73), ("pangolin_scales", 0.82), ("live_reptile", 0.71)];
const XRAY_V4_MAX_ALARM_RATE: f64 = 0.03;

#[test]
fn xray_v1_reproduces_its_model_card() {
    xray_reproduces_its_model_card("xray-v1", ".cache/xray-test", &XRAY_V1_FLOORS, XRAY_V1_MAX_ALARM_RATE);
}

#[test]
fn xray_v2_reproduces_its_model_card() {
    xray_reproduces_its_model_card("xray-v2", ".cache/xray-v2-test", &XRAY_V2_FLOORS, XRAY_V2_MAX_ALARM_RATE);
}

#[test]
fn xray_v3_reproduces_its_model_card() {
    xray_reproduces_its_model_card("xray-v3", ".cache/xray-v3-test", &XRAY_V3_FLOORS, XRAY_V3_MAX_ALARM_RATE);
}

#[test]
fn xray_v4_reproduces_its_model_card() {
    xray_reproduces_its_model_card("xray-v4", ".cache/xray-v3-test-clean", &XRAY_V4_FLOORS, XRAY_V4_MAX_ALARM_RATE);
}

/// Detection per label on the test scans projected onto real backgrounds, rendered with the
/// simulator's noise inside the objects only (xray-v3's card, "A render shortcut", measured
/// 2026-12-04): xray-v4, xray-v3 and xray-v1.
const CLEAN_V4: [(&str, f64); 3] = [("ivory", 0.724), ("pangolin_scales", 0.811), ("live_reptile", 0.699)];
const CLEAN_V3: [(&str, f64); 3] = [("ivory", 0.654), ("pangolin_scales", 0.787), ("live_reptile", 0.681)];
const CLEAN_V1: [(&str, f64); 3] = [("ivory", 0.591), ("pangolin_scales", 0.713), ("live_reptile", 0.607)];

/// The default switch rests on xray-v3 finding more than xray-v1 where the render shortcut cannot
/// help it: on real backgrounds without the simulator's noise around the objects, every label,
/// and no more wildlife-free projected scans flagged; both as on the card.
#[test]
fn xray_v3_beats_xray_v1_without_the_render_shortcut() {
    beats_without_the_render_shortcut(("xray-v3", &CLEAN_V3), ("xray-v1", &CLEAN_V1));
}

/// The switch from xray-v3 to xray-v4 rests on the same comparison (xray-v4's card); on the real
/// test scans it also flags fewer (18 against 21 of 845: each model's card test above).
#[test]
fn xray_v4_beats_xray_v3_without_the_render_shortcut() {
    beats_without_the_render_shortcut(("xray-v4", &CLEAN_V4), ("xray-v3", &CLEAN_V3));
}

/// `new` finds more of every label than `old` on the test scans projected onto real backgrounds
/// with the simulator's noise inside the objects only (.cache/xray-v3-test-clean, made by
/// scripts/quality.sh), flags no more of those without wildlife, and both measure as on the card.
fn beats_without_the_render_shortcut(new: (&str, &[(&str, f64)]), old: (&str, &[(&str, f64)])) {
    let set = common::root().join(".cache/xray-v3-test-clean");
    let (labels, boxes) = (set.join("xray-v3-test-clean-labels.csv"), set.join("xray-v3-test-clean-boxes.csv"));
    assert!(labels.is_file(), "{} is missing: scripts/quality.sh makes it", labels.display());
    let measured = |model: &str| {
        let report = common::eval_boxes(std::path::Path::new("/"), &labels, &boxes, Some(model));
        assert!(report["failed"].as_object().unwrap().is_empty(), "{}", report["failed"]);
        report["models"][0].clone()
    };
    let ((new_name, new_card), (old_name, old_card)) = (new, old);
    let (a_report, b_report) = (measured(new_name), measured(old_name));
    for ((label, card_a), (_, card_b)) in new_card.iter().zip(old_card.iter()) {
        let rate = |m: &serde_json::Value| m["boxes"][label]["detection_rate"].as_f64().unwrap();
        let (a, b) = (rate(&a_report), rate(&b_report));
        println!("quality: clean rendering, {label}: {new_name} {a:.4} (card {card_a}), {old_name} {b:.4} (card {card_b})");
        assert!((a - card_a).abs() <= 0.005 && (b - card_b).abs() <= 0.005, "{label}: {new_name} {a}, {old_name} {b}");
        assert!(a > b, "{label}: {new_name} {a} does not beat {old_name} {b}");
    }
    let flagged = |m: &serde_json::Value| m["flagged_any_by_dataset_label"]["no_wildlife"][0].as_u64().unwrap();
    let (a, b) = (flagged(&a_report), flagged(&b_report));
    println!("quality: clean rendering, wildlife-free projected scans flagged: {new_name} {a}, {old_name} {b}");
    assert!(a <= b, "{new_name} flags {a} wildlife-free projected scans, {old_name} {b}");
}

/// `tusk eval --boxes` with `model` on its synthetic test scans and the real scans it never trained
/// on (`set`, made by scripts/quality.sh) equals models/<model>/metrics.json: detection rate and AP
/// per label within 0.5 points, scans flagged per source; and stays above the floors.
fn xray_reproduces_its_model_card(model: &str, set: &str, floors: &[(&str, f64)], max_alarm_rate: f64) {
    let root = common::root();
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(format!("models/{model}/metrics.json"))).unwrap()).unwrap();
    let card = &card["models"][0];
    assert_eq!(card["model"], model);
    let set = root.join(set);
    let (labels, boxes) = (set.join("eval.csv"), set.join("eval_boxes.csv"));
    assert!(labels.is_file(), "{} is missing: scripts/quality.sh makes it", labels.display());
    let report = common::eval_boxes(std::path::Path::new("/"), &labels, &boxes, Some(model));
    assert!(report["failed"].as_object().unwrap().is_empty(), "{}", report["failed"]);
    let rust = &report["models"][0];
    assert_eq!(rust["images"], card["images"]);
    for &(label, floor) in floors {
        for metric in ["detection_rate", "ap50"] {
            let (a, b) = (rust["boxes"][label][metric].as_f64().unwrap(), card["boxes"][label][metric].as_f64().unwrap());
            println!("quality: {model} {label} {metric}: tusk {a:.4} card {b:.4}");
            assert!((a - b).abs() <= 0.005, "{model} {label} {metric}: tusk {a} vs card {b}");
        }
        let rate = rust["boxes"][label]["detection_rate"].as_f64().unwrap();
        assert!(rate >= floor, "{model} {label}: detection rate {rate} below {floor}");
    }
    let (mut alarms, mut scans) = (0.0, 0.0);
    for (dataset_label, cell) in rust["flagged_any_by_dataset_label"].as_object().unwrap() {
        let [k, n] = [cell[0].as_f64().unwrap(), cell[1].as_f64().unwrap()];
        let c = &card["flagged_any_by_dataset_label"][dataset_label];
        let [ck, cn] = [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()];
        println!("quality: {model} scans flagged, {dataset_label}: tusk {k}/{n} card {ck}/{cn}");
        assert_eq!(n, cn, "{model} {dataset_label}: scan count");
        assert!((k / n - ck / cn).abs() <= 0.005, "{model} {dataset_label}: tusk {k}/{n} vs card {ck}/{cn}");
        if dataset_label != "synthetic" {
            alarms += k;
            scans += n;
        }
    }
    assert!(alarms / scans <= max_alarm_rate, "{model}: alarm rate on real scans {alarms}/{scans}");
}
