//! End to end: `tusk scan` over the demo data with the real model, the SQLite store and JSONL;
//! reruns do no new work, changed files and new model versions are redone, Ctrl-C resumes.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hex_distance(a: &str, b: &str) -> u32 {
    (u64::from_str_radix(a, 16).unwrap() ^ u64::from_str_radix(b, 16).unwrap()).count_ones()
}

#[test]
fn demo_scan_stores_every_object_and_rerun_does_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let jsonl = dir.path().join("demo.jsonl");
    let manifest = common::demo_dir().join("manifest.jsonl");
    let total = std::fs::read_to_string(&manifest).unwrap().lines().count() as i64;
    assert!(total >= 15);

    let out = common::scan_ok(&manifest, &db, &["--jsonl", jsonl.to_str().unwrap(), "--batch", "4"]);
    assert!(out.contains(&format!("{total} processed")), "{out}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM scores WHERE label = 'live_reptile'"), total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM failures"), 0);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects WHERE seller_id IS NULL OR listing_id IS NULL"), 0);
    let run = common::pairs(&db, "SELECT m.name, m.sha256 FROM models m JOIN run_models r ON r.model_id = m.id");
    assert_eq!(run[0].0, "listing-v1", "listing-v1 is the default listing model");
    assert_eq!(run[0].1.len(), 64);

    let lines = common::jsonl(&jsonl);
    assert_eq!(lines.len() as i64, total);
    for l in &lines {
        assert_eq!(l["schema_version"], 1);
        assert_eq!(l["kind"], "listing");
        assert!(l["failure"].is_null());
        for h in ["phash", "dhash"] {
            let v = l["hashes"][h].as_str().unwrap();
            assert_eq!(v.len(), 16, "{h} {v}");
            assert!(v.chars().all(|c| c.is_ascii_hexdigit()));
        }
        for label in ["ivory", "pangolin_scales", "live_reptile"] {
            let s = l["scores"]["listing-v1"][label].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&s), "{label} {s}");
        }
        assert!(l["scores"]["imagenet-mobilenetv2"].is_null(), "the baseline runs only when asked");
        assert!(l["width"].as_u64().unwrap() > 0 && l["height"].as_u64().unwrap() > 0);
    }

    // The whole pipeline (batched) gives the Python reference's scores on the lossless images.
    let reference = common::python_reference("listing-v1");
    let mut compared = 0;
    for r in reference["images"].as_array().unwrap() {
        let file = r["file"].as_str().unwrap().trim_start_matches("datasets/demo/");
        if let Some(l) = lines.iter().find(|l| l["uri"] == file) {
            for (label, want) in r["labels"].as_object().unwrap() {
                let got = l["scores"]["listing-v1"][label].as_f64().unwrap();
                let want = want.as_f64().unwrap();
                assert!((got - want).abs() <= 1e-3, "{file} {label}: {got} vs {want}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 4, "compared {compared} images");

    // The re-posted photo's nearest neighbour by pHash is the original, and it is close.
    let by_uri = |u: &str| lines.iter().find(|l| l["uri"] == u).unwrap().clone();
    let original = by_uri("images/met_ivory_41975.jpg");
    let repost = by_uri("images/reposted_ivory_41975.jpg");
    assert_ne!(original["seller_id"], repost["seller_id"]);
    let d = |a: &serde_json::Value, b: &serde_json::Value, h: &str| {
        hex_distance(a["hashes"][h].as_str().unwrap(), b["hashes"][h].as_str().unwrap())
    };
    assert!(d(&original, &repost, "phash") <= 6, "pHash distance {}", d(&original, &repost, "phash"));
    for other in lines.iter().filter(|l| l["uri"] != original["uri"] && l["uri"] != repost["uri"]) {
        assert!(d(other, &repost, "phash") > d(&original, &repost, "phash"), "{}", other["uri"]);
    }

    // Rerun: nothing processed, nothing appended, no new rows.
    let again = common::scan_ok(&manifest, &db, &["--jsonl", jsonl.to_str().unwrap()]);
    assert!(again.contains("0 processed") && again.contains(&format!("{total} skipped")), "{again}");
    assert_eq!(common::jsonl(&jsonl).len() as i64, total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'done'"), 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn changed_file_and_new_model_version_are_redone_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    copy_dir(&common::demo_dir().join("images"), &images);
    let models = dir.path().join("models");
    copy_dir(&common::models_dir(), &models);
    let db = dir.path().join("t.db");
    let models_arg = ["--models", models.to_str().unwrap()];
    let n = std::fs::read_dir(&images).unwrap().count() as i64;

    common::scan_ok(&images, &db, &models_arg);
    // Replace one file's bytes with another photo: new size and mtime, new fingerprint.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(images.join("skimage_coffee.jpg"), images.join("met_ivory_60217.jpg")).unwrap();
    let out = common::scan_ok(&images, &db, &models_arg);
    assert!(out.contains("1 processed") && out.contains(&format!("{} skipped", n - 1)), "{out}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), n);
    let hashes = common::pairs(
        &db,
        "SELECT a.phash, b.phash FROM objects a, objects b
         WHERE a.uri LIKE '%/met_ivory_60217.jpg' AND b.uri LIKE '%/skimage_coffee.jpg'",
    );
    assert_eq!(hashes[0].0, hashes[0].1, "the changed file now hashes like the photo it became");

    // A new model version redoes every object once, keeping one result per model version.
    let toml = models.join("listing-v1/model.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace("version = \"1.0\"", "version = \"1.0-b\"");
    std::fs::write(&toml, text).unwrap();
    let out = common::scan_ok(&images, &db, &models_arg);
    assert!(out.contains(&format!("{n} processed")), "{out}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM models WHERE name = 'listing-v1'"), 2);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), 2 * n);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), n);
    let dup = "SELECT COUNT(*) FROM (SELECT object_id, fingerprint, model_id FROM results GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)";
    assert_eq!(common::count(&db, dup), 0);
}

#[test]
fn ctrl_c_stops_cleanly_with_130_and_the_rerun_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let demo: Vec<_> = std::fs::read_dir(common::demo_dir().join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    let copies = 60;
    for i in 0..copies {
        for p in &demo {
            std::fs::copy(p, images.join(format!("{i:03}_{}", p.file_name().unwrap().to_str().unwrap()))).unwrap();
        }
    }
    let total = (copies * demo.len()) as i64;
    let db = dir.path().join("t.db");
    let jsonl = dir.path().join("t.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tusk"))
        .args(["scan", images.to_str().unwrap(), "--db", db.to_str().unwrap(), "--jsonl", jsonl.to_str().unwrap()])
        .args(["--progress", "off", "--workers", "1", "--threads", "1"])
        .env("TUSK_MODELS", common::models_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while common::jsonl(&jsonl).len() < 20 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "finished before it could be interrupted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("interrupted"), "{stdout}");
    let done = common::count(&db, "SELECT COUNT(*) FROM objects");
    assert!(done > 0 && done < total, "{done} of {total} done at the interrupt");
    assert_eq!(common::jsonl(&jsonl).len() as i64, done, "every stored object was written to JSONL, once");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'"), 1);

    let again = common::scan_ok(&images, &db, &["--jsonl", jsonl.to_str().unwrap()]);
    assert!(again.contains(&format!("{} processed", total - done)), "{again}");
    assert!(again.contains(&format!("{done} skipped")), "{again}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), total);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), total);
    let lines = common::jsonl(&jsonl);
    let mut uris: Vec<&str> = lines.iter().map(|l| l["uri"].as_str().unwrap()).collect();
    uris.sort_unstable();
    uris.dedup();
    assert_eq!(uris.len() as i64, total, "each object appears once in the JSONL");
    assert_eq!(lines.len() as i64, total);
}
