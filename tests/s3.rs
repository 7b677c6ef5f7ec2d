//! `tusk scan s3://…` against a real S3-compatible server (s3s-fs on loopback): the same
//! results as a local scan, bad objects as failure records, clear setup errors, SIGKILL at
//! random moments and a server outage without losing or duplicating a result.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::s3server::{put_small_jpegs, small_real_jpegs, S3Server};

fn demo_objects(prefix: &str) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(common::demo_dir().join("images"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (format!("{prefix}{}", p.file_name().unwrap().to_str().unwrap()), std::fs::read(&p).unwrap())
        })
        .collect()
}

fn file_name(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

#[test]
fn s3_scan_gives_the_same_results_as_the_local_scan() {
    let server = S3Server::start();
    let mut objects = demo_objects("listings/demo/");
    objects.extend(demo_objects("xray/").into_iter().take(2));
    server.put("tusk", objects);
    let dir = tempfile::tempdir().unwrap();

    let local_db = dir.path().join("local.db");
    let local_jsonl = dir.path().join("local.jsonl");
    common::scan_ok(&common::demo_dir().join("images"), &local_db, &["--jsonl", local_jsonl.to_str().unwrap()]);

    let db = dir.path().join("s3.db");
    let jsonl = dir.path().join("s3.jsonl");
    let rules = "listings/=listing,xray/=xray";
    let out = server.scan_ok("s3://tusk/", &db, &["--jsonl", jsonl.to_str().unwrap(), "--kind-by-prefix", rules]);
    let local = common::jsonl(&local_jsonl);
    let remote = common::jsonl(&jsonl);
    assert!(out.contains(&format!("{} processed", local.len() + 2)), "{out}");

    for l in &local {
        let name = file_name(l["uri"].as_str().unwrap());
        let r = remote
            .iter()
            .find(|r| r["uri"] == format!("s3://tusk/listings/demo/{name}"))
            .unwrap_or_else(|| panic!("{name} missing from the S3 scan"));
        assert_eq!(r["kind"], "listing");
        for field in ["width", "height", "hashes", "scores", "detections"] {
            assert_eq!(r[field], l[field], "{name}: {field}");
        }
    }
    let xray: Vec<_> = remote.iter().filter(|r| r["uri"].as_str().unwrap().starts_with("s3://tusk/xray/")).collect();
    assert_eq!(xray.len(), 2);
    for r in xray {
        assert_eq!(r["kind"], "xray");
        let scores = r["scores"].as_object().unwrap();
        assert!(
            scores.contains_key("xray-v4") && !scores.contains_key("listing-v1"),
            "only the X-ray model runs on an X-ray scan: {scores:?}"
        );
        assert!(r["hashes"]["phash"].is_string());
    }
    // s3s-fs lists objects without ETags, so the fingerprint is size-mtime from the listing.
    let fp = common::pairs(&db, "SELECT uri, fingerprint FROM objects WHERE uri LIKE '%listings%skimage_coins.png'");
    let size = std::fs::metadata(common::demo_dir().join("images/skimage_coins.png")).unwrap().len();
    assert!(fp[0].1.starts_with(&format!("{size}-")), "{fp:?}");

    let again = server.scan_ok("s3://tusk/", &db, &["--kind-by-prefix", rules]);
    assert!(again.contains("0 processed") && again.contains(&format!("{} skipped", local.len() + 2)), "{again}");

    // A manifest may name s3:// objects, with the crawler's context; a missing one is a failure.
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        "{\"uri\":\"s3://tusk/listings/demo/skimage_coins.png\",\"seller_id\":\"s7\",\"listing_id\":\"L7\"}\n\
         {\"uri\":\"s3://tusk/listings/demo/nope.jpg\",\"seller_id\":\"s8\"}\n",
    )
    .unwrap();
    let mdb = dir.path().join("m.db");
    let out = server.scan_ok(manifest.to_str().unwrap(), &mdb, &[]);
    assert!(out.contains("1 processed") && out.contains("1 failed"), "{out}");
    // Named one by one, objects are fingerprinted by HEAD, which s3s-fs answers with the MD5 ETag.
    let row = common::pairs(&mdb, "SELECT seller_id, fingerprint FROM objects");
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].0, "s7");
    assert_eq!(row[0].1.len(), 32, "{row:?}");
    assert_eq!(common::pairs(&mdb, "SELECT uri, reason FROM failures")[0].1, "not_found");
}

#[test]
fn bad_objects_become_failure_records_and_the_run_goes_on() {
    let server = S3Server::start();
    let good = std::fs::read(common::demo_dir().join("images/met_ivory_41975.jpg")).unwrap();
    let huge = common::png_claiming(100_000, 100_000);
    let mut objects = vec![
        ("bad/empty.jpg".to_string(), Vec::new()),
        ("bad/truncated.jpg".to_string(), good[..good.len() / 2].to_vec()),
        ("bad/notes.jpg".to_string(), b"not an image".to_vec()),
        ("bad/huge.png".to_string(), huge),
    ];
    // Many good objects before the one that vanishes, so it is listed long before it is fetched.
    for (i, jpeg) in small_real_jpegs(300).into_iter().enumerate() {
        objects.push((format!("good/{i:04}.jpg"), jpeg));
    }
    objects.push(("good/zzzz_vanishes.jpg".to_string(), good.clone()));
    server.put("tusk", objects);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let jsonl = dir.path().join("t.jsonl");
    let child = server
        .tusk_scan("s3://tusk/", &db, &["--jsonl", jsonl.to_str().unwrap(), "--workers", "1", "--threads", "1", "--batch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while common::jsonl(&jsonl).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.delete("tusk", "good/zzzz_vanishes.jpg");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("300 processed") && stdout.contains("5 failed"), "{stdout}");

    let reasons = common::pairs(&db, "SELECT uri, stage || '/' || reason FROM failures ORDER BY uri");
    let expected = [
        ("s3://tusk/bad/empty.jpg", "decode/empty_file"),
        ("s3://tusk/bad/huge.png", "decode/too_large"),
        ("s3://tusk/bad/notes.jpg", "decode/unknown_format"),
        ("s3://tusk/bad/truncated.jpg", "decode/truncated"),
        ("s3://tusk/good/zzzz_vanishes.jpg", "read/not_found"),
    ];
    let got: Vec<(&str, &str)> = reasons.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, expected);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), 300);
}

#[test]
fn setup_problems_are_one_line_and_exit_2_quickly() {
    let server = S3Server::start();
    server.put("tusk", demo_objects("a/").into_iter().take(1).collect());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    type Tweak = Box<dyn Fn(&mut std::process::Command)>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
        ("s3://nosuchbucket/", Box::new(|_| {}), "does not exist"),
        ("s3://tusk/", Box::new(|c| {
            c.env("AWS_SECRET_ACCESS_KEY", "wrong-secret");
        }), "check the credentials"),
        ("s3://tusk/", Box::new(|c| {
            c.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env("HOME", "/nonexistent");
        }), "no usable AWS credentials"),
    ];
    for (source, tweak, words) in cases {
        let mut cmd = server.tusk_scan(source, &db, &[]);
        tweak(&mut cmd);
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{source}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(words), "{}", lines[0]);
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    // An endpoint where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = S3Server::tusk_scan_at(&format!("http://127.0.0.1:{port}"), "s3://tusk/", &db, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.trim().lines().count() == 1 && stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn sigkill_at_random_moments_then_rerun_gives_exactly_one_result_per_object() {
    let server = S3Server::start();
    let n = 2000;
    put_small_jpegs(&server, "tusk", "k/", n);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    // Kill points spread over the run, varied by the clock so trials differ between runs.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis() as u64;
    let mut stored = Vec::new();
    for trial in 0..5u64 {
        let delay = Duration::from_millis(400 + (seed * 7919 + trial * 1237) % 2200);
        let mut child = server
            .tusk_scan("s3://tusk/k/", &db, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stored.push(common::count(&db, "SELECT COUNT(*) FROM objects"));
    }
    eprintln!("objects stored after each SIGKILL: {stored:?}");
    assert!(stored.last().unwrap() < &(n as i64), "the kills came too late to test anything: {stored:?}");
    let out = server.scan_ok("s3://tusk/k/", &db, &[]);
    assert!(out.contains("0 failed"), "{out}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(DISTINCT uri) FROM objects"), n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), n as i64);
    // one score per label of the default listing model (listing-v1: ivory, pangolin_scales, live_reptile)
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM scores"), 3 * n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM (SELECT DISTINCT object_id FROM scores)"), n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM failures"), 0);
    let ok = common::pairs(&db, "SELECT 'integrity', integrity_check FROM pragma_integrity_check");
    assert_eq!(ok[0].1, "ok");
}

#[test]
fn an_outage_mid_run_loses_nothing_and_a_rerun_completes_it() {
    let mut server = S3Server::start();
    let n = 600;
    put_small_jpegs(&server, "tusk", "o/", n);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let jsonl = dir.path().join("t.jsonl");
    let child = server
        .tusk_scan("s3://tusk/o/", &db, &["--jsonl", jsonl.to_str().unwrap(), "--s3-attempts", "3", "--s3-timeout-secs", "2"])
        .args(["--workers", "1", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while common::jsonl(&jsonl).len() < 50 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    std::thread::sleep(Duration::from_secs(10));
    server.start_again();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let failed = common::count(&db, "SELECT COUNT(*) FROM failures");
    let stored = common::count(&db, "SELECT COUNT(*) FROM objects");
    eprintln!("outage run: {stored} stored, {failed} failure records\n{stdout}");
    assert_eq!(stored + failed, n as i64, "every object is a result or a failure record");
    assert!(failed > 0, "the outage should have cost some downloads");
    assert_eq!(
        common::count(&db, "SELECT COUNT(*) FROM failures WHERE stage = 'read' AND reason IN ('unavailable', 'timeout')"),
        failed
    );

    let again = server.scan_ok("s3://tusk/o/", &db, &[]);
    assert!(again.contains(&format!("{failed} processed")), "{again}");
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM objects"), n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), n as i64);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM failures"), 0);
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(90), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn follow_picks_up_new_and_changed_objects_and_out_writes_whole_parts() {
    let server = S3Server::start();
    let jpegs = small_real_jpegs(26);
    server.put("tusk", jpegs[..20].iter().enumerate().map(|(i, b)| (format!("in/{i:03}.jpg"), b.clone())).collect());
    server.put("results", vec![]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let child = server
        .tusk_scan("s3://tusk/in/", &db, &["--follow", "--interval", "1s", "--out", "s3://results/parts"])
        .args(["--out-part-records", "8", "--out-part-age", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first pass", || common::count(&db, "SELECT COUNT(*) FROM objects") == 20);
    let before = common::pairs(&db, "SELECT uri, fingerprint FROM objects WHERE uri LIKE '%/007.jpg'");

    // New objects, and one replaced with other bytes (a new ETag).
    let mut more: Vec<(String, Vec<u8>)> =
        jpegs[20..25].iter().enumerate().map(|(i, b)| (format!("in/{:03}.jpg", 20 + i), b.clone())).collect();
    more.push(("in/007.jpg".to_string(), jpegs[25].clone()));
    server.put("tusk", more);
    wait_for("the new and changed objects", || {
        common::count(&db, "SELECT COUNT(*) FROM objects") == 25
            && common::pairs(&db, "SELECT uri, fingerprint FROM objects WHERE uri LIKE '%/007.jpg'") != before
    });
    // Let the last part's age run out, then stop the way an operator does.
    wait_for("the part files", || {
        let lines: usize = server.get_all("results", "parts/").iter().map(|(_, b)| b.iter().filter(|c| **c == b'\n').count()).sum();
        lines >= 26
    });
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));

    let parts = server.get_all("results", "parts/");
    assert!(parts.len() >= 4, "{} parts", parts.len());
    let mut uris = Vec::new();
    for (key, body) in &parts {
        assert!(key.starts_with("parts/part-") && key.ends_with(".jsonl"), "{key}");
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.ends_with('\n'), "{key} is whole");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            uris.push(v["uri"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(uris.len(), 26, "20 + 5 new + 1 changed");
    assert_eq!(uris.iter().filter(|u| u.ends_with("/007.jpg")).count(), 2);
    uris.sort();
    uris.dedup();
    assert_eq!(uris.len(), 25);
    assert_eq!(common::count(&db, "SELECT COUNT(*) FROM results"), 25);
}

/// Peak resident memory (VmHWM) of a running process, in KiB; 0 once it is gone.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
fn peak_memory_does_not_grow_with_the_number_of_keys() {
    let server = S3Server::start();
    // Objects written straight into the server's folder (hard links to a few small JPEGs):
    // listing and fetching are what is measured, so `--hash-only` leaves the models out.
    let src = tempfile::tempdir().unwrap();
    let photos: Vec<std::path::PathBuf> = small_real_jpegs(50)
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let p = src.path().join(format!("{i}.jpg"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect();
    let mut peaks = Vec::new();
    for n in [2_000usize, 20_000] {
        let base = server.data_dir().join("mem").join(format!("n{n}"));
        for i in 0..n {
            let dir = base.join(format!("d{:03}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir_all(&dir).unwrap();
            }
            std::fs::hard_link(&photos[i % photos.len()], dir.join(format!("{i:06}.jpg"))).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let mut child = server
            .tusk_scan(&format!("s3://mem/n{n}/"), &db, &["--hash-only"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            peak = peak.max(peak_rss_kib(child.id()));
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains(&format!("{n} processed")), "{stdout}");
        eprintln!("{n} keys: peak RSS {} MiB", peak / 1024);
        peaks.push(peak);
    }
    assert!(peaks[0] > 0);
    assert!(
        peaks[1] <= peaks[0] + peaks[0] / 4 + 8 * 1024,
        "peak RSS grew with the key count: {} KiB for 2,000 keys, {} KiB for 20,000",
        peaks[0],
        peaks[1]
    );
}
