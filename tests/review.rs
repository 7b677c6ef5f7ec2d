//! The review workspace as an analyst meets it: a store made by the demo scan, a real
//! `tusk serve` on a free loopback port, and a real headless Chromium driven over WebDriver
//! (Debian's chromium and chromedriver; scripts/setup-browser.sh). Every decision made on the
//! page is checked through the API.

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::webdriver::Browser;
use serde_json::{json, Value};

/// A `tusk serve` on a copy of the demo scan's store, with a token per role.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    analyst: String,
    station: String,
    crawler: String,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db");
        common::scan_ok(&common::demo_dir().join("manifest.jsonl"), &db, &[]);
        let db = db.to_str().unwrap().to_string();
        let token = |role: &str, name: &str| common::create_token(&db, role, name);
        let (analyst, station, crawler) = (token("analyst", "ana"), token("station", "gate-3"), token("crawler", "crawler-1"));
        let demo = common::demo_dir();
        let (child, port) = common::spawn_serve(dir.path(), &db, &["--images", demo.to_str().unwrap()]);
        Server { child, port, dir, analyst, station, crawler }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// An API call with a bearer token: (status, JSON or null).
    fn api(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &self.url(path)).set("Authorization", &format!("Bearer {token}")).timeout(Duration::from_secs(60));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let r = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        (r.status(), r.into_json().unwrap_or(Value::Null))
    }

    fn post_picture(&self, path: &str, token: &str, ct: &str, bytes: &[u8]) -> Value {
        let r = ureq::post(&self.url(path)).set("Authorization", &format!("Bearer {token}")).set("Content-Type", ct).send_bytes(bytes).unwrap();
        r.into_json().unwrap()
    }

    /// The object's decisions through the API.
    fn decisions(&self, id: i64) -> Vec<Value> {
        let (status, v) = self.api("GET", &format!("/v1/decisions?object_id={id}"), &self.analyst, None);
        assert_eq!(status, 200);
        v["decisions"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain request that does not follow redirects: (status, Location).
fn raw(method: &str, url: &str, cookie: Option<&str>, form: Option<&str>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent.request(method, url);
    if let Some(c) = cookie {
        req = req.set("Cookie", &format!("tusk_session={c}"));
    }
    let resp = match form {
        Some(f) => req.set("Content-Type", "application/x-www-form-urlencoded").send_string(f),
        None => req.call(),
    };
    let r = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (r.status(), r.header("location").unwrap_or("").to_string())
}

/// Where the browser test leaves its screenshots (the README's come from here:
/// `TUSK_SCREENSHOTS=docs cargo test --test review`).
fn screenshots() -> PathBuf {
    std::env::var_os("TUSK_SCREENSHOTS").map(|d| common::root().join(d)).unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}

fn sign_in(b: &mut Browser, s: &Server, token: &str) {
    b.goto(&s.url("/signin"));
    let field = b.find("#signin input[name=token]");
    b.type_into(&field, token);
    let button = b.find("#signin [data-action=signin]");
    b.click_to_load(&button);
}

/// The queue's object ids, in order.
fn queue_ids(b: &mut Browser) -> Vec<i64> {
    let ids = b.eval("return [...document.querySelectorAll('ol.queue .item[data-object-id]')].map(e => Number(e.dataset.objectId));");
    ids.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect()
}

/// Reloads the queue until it no longer says that re-used photos are still being grouped.
fn wait_for_grouping(b: &mut Browser, s: &Server) {
    let started = std::time::Instant::now();
    while b.eval("return document.querySelector('#clusters-pending') !== null;") == Value::Bool(true) {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the queue still groups re-used photos after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(500));
        b.goto(&s.url("/"));
    }
}

fn item(b: &mut Browser, id: i64, css: &str) -> common::webdriver::Element {
    b.find(&format!(".item[data-object-id=\"{id}\"] {css}"))
}

fn last_action(s: &Server, id: i64) -> (String, Option<String>, String) {
    let d = s.decisions(id).last().cloned().unwrap_or_else(|| panic!("object {id} has no decision"));
    (d["action"].as_str().unwrap().to_string(), d["reason"].as_str().map(str::to_string), d["who"].as_str().unwrap().to_string())
}

#[test]
fn analyst_reviews_in_a_real_browser() {
    let s = Server::start();
    // A re-post of a flagged demo photo by another seller (a cluster of two in the queue), and a
    // flagged X-ray scan from a station.
    let photo = std::fs::read(common::demo_dir().join("images/met_ivory_60217.jpg")).unwrap();
    let repost = s.post_picture("/v1/listings?seller_id=seller-zz&listing_id=L77&platform=other-market", &s.crawler, "image/jpeg", &photo);
    let repost_id = repost["object_id"].as_i64().unwrap();
    assert_eq!(repost["flagged"], true, "the re-post is flagged as its original: {repost}");
    let scan_path = common::root().join("tests/fixtures/xray").join(first_flagged_scan());
    let scan = s.post_picture("/v1/scans?station=gate-3&parcel=P-1", &s.station, "image/png", &std::fs::read(&scan_path).unwrap());
    let scan_id = scan["object_id"].as_i64().unwrap();
    assert_eq!(scan["flagged"], true, "{scan}");

    let mut b = Browser::start();
    // Without a session every page sends the browser to sign-in.
    b.goto(&s.url("/"));
    assert!(b.url().contains("/signin"), "{}", b.url());
    // A token of another role signs in but cannot review.
    sign_in(&mut b, &s, &s.station);
    let forbidden = b.find("#forbidden");
    assert!(b.text(&forbidden).contains("station token cannot review"));
    let out = b.find("[data-action=signout]");
    b.click_to_load(&out);
    // A wrong token is refused.
    sign_in(&mut b, &s, "tusk_wrong");
    assert!(b.url().contains("failed=1"), "{}", b.url());
    sign_in(&mut b, &s, &s.analyst);
    assert_eq!(b.url(), s.url("/"));
    // Pages do not wait for the re-used-photo grouping (verifying every candidate pair takes a
    // while in a debug build); they say so until it is done.
    wait_for_grouping(&mut b, &s);

    // The queue: flagged objects, newest first, one item per re-used photo.
    let ids = queue_ids(&mut b);
    assert_eq!(ids.first(), Some(&scan_id), "newest first: {ids:?}");
    assert!(ids.contains(&repost_id), "{ids:?}");
    let original: i64 = common::count(&s.dir.path().join("demo.db"), "SELECT id FROM objects WHERE uri = 'images/met_ivory_60217.jpg'");
    assert!(!ids.contains(&original), "the original is folded into its re-post's item: {ids:?}");
    let copies = item(&mut b, repost_id, "a.cluster");
    assert_eq!(b.attr(&copies, "data-cluster-size").as_deref(), Some("2"));
    b.screenshot(&screenshots().join("review-queue.png"));

    // Confirm one item; the API shows it with who decided and the model at the time.
    let others: Vec<i64> = ids.iter().copied().filter(|&i| i != scan_id && i != repost_id).collect();
    let (a, c) = (others[0], others[1]);
    let confirm = item(&mut b, a, "[data-action=confirm]");
    b.click_to_load(&confirm);
    assert_eq!(last_action(&s, a), ("confirm".into(), None, "ana".into()));
    let d = s.decisions(a).pop().unwrap();
    assert_eq!(d["model"], "listing-v1");
    assert!(d["threshold"].as_f64().is_some() && d["score"].as_f64().is_some() && d["at"].is_string(), "{d}");
    let badge = item(&mut b, a, "[data-decision]");
    assert_eq!(b.attr(&badge, "data-decision").as_deref(), Some("confirm"));

    // Reject another with a reason and a note.
    let reason = item(&mut b, c, "select[name=reason] option[value=resin]");
    b.click(&reason);
    let note = item(&mut b, c, "input[name=note]");
    b.type_into(&note, "cast resin, seams visible");
    let reject = item(&mut b, c, "[data-action=reject]");
    b.click_to_load(&reject);
    assert_eq!(last_action(&s, c), ("reject".into(), Some("resin".into()), "ana".into()));
    assert_eq!(s.decisions(c).last().unwrap()["note"], "cast resin, seams visible");

    // Undo (the key u presses the undo bar): an undo row naming the reject; c is open again.
    let reject_id = s.decisions(c).last().unwrap()["id"].as_i64().unwrap();
    b.find("#undo-bar [data-action=undo]");
    b.keys_to_load("u");
    wait_for(|| s.decisions(c).last().unwrap()["action"] == "undo");
    assert_eq!(s.decisions(c).last().unwrap()["undoes"], reject_id);
    let badge = item(&mut b, c, "[data-decision]");
    assert_eq!(b.attr(&badge, "data-decision").as_deref(), Some(""));

    // Filters: not yet decided leaves out the confirmed one; X-ray only is the scan.
    let decided = b.find("#filters select[name=decided] option[value=no]");
    b.click(&decided);
    let filter = b.find("#filters [data-action=filter]");
    b.click_to_load(&filter);
    let open = queue_ids(&mut b);
    assert!(!open.contains(&a) && open.contains(&c), "{open:?}");
    b.goto(&s.url("/?kind=xray"));
    assert_eq!(queue_ids(&mut b), [scan_id]);

    // Keyboard: the first item has the focus; c confirms it.
    b.keys_to_load("c");
    wait_for(|| s.decisions(scan_id).last().is_some_and(|d| d["action"] == "confirm"));

    // A scan under review: its picture with boxes, scores, station metadata; fix a box.
    b.goto(&s.url(&format!("/objects/{scan_id}")));
    let picture = b.find("#picture");
    let loaded = b.eval("const i = document.querySelector('#picture'); return i.complete && i.naturalWidth > 0;");
    assert_eq!(loaded, json!(true), "the scan's picture loads: {:?}", b.attr(&picture, "src"));
    let meta = b.find("#meta");
    assert!(b.text(&meta).contains("gate-3"));
    b.eval("window.scrollTo(0, 0); document.activeElement.blur(); return true;");
    b.screenshot(&screenshots().join("review-scan.png"));
    let x1 = b.find("#boxes input[name=box0_x1]");
    b.clear(&x1);
    b.type_into(&x1, "300");
    let fix = b.find("#boxes [data-action=confirm-boxes]");
    b.click_to_load(&fix);
    let fixed = s.decisions(scan_id).pop().unwrap();
    assert_eq!(fixed["boxes"][0]["box"][2], 300.0, "{fixed}");

    // Open the cluster: both copies side by side with the evidence; decide for the whole cluster.
    b.goto(&s.url("/"));
    let cluster = item(&mut b, repost_id, "a.cluster");
    b.click_to_load(&cluster);
    assert!(b.url().contains(&format!("/objects/{repost_id}")));
    let same = b.find(&format!("[data-same-object=\"{original}\"]"));
    assert!(b.text(&same).contains("seller-bo"));
    b.find(&format!("#cluster-members [data-member=\"{original}\"]"));
    let all = b.find(".item input[name=cluster]");
    b.click(&all);
    let confirm = b.find(".item [data-action=confirm]");
    b.click_to_load(&confirm);
    assert_eq!(last_action(&s, repost_id).0, "confirm");
    assert_eq!(last_action(&s, original).0, "confirm", "the decision covered the cluster");

    // The seller network: the re-post links seller-bo and seller-zz, with a confirmed find.
    b.goto(&s.url("/network"));
    let link = b.find("[data-link=\"seller-bo|seller-zz\"]");
    assert_eq!(b.attr(&link, "data-confirmed").as_deref(), Some("true"));
    let (status, _) = raw("GET", &s.url("/network.graphml"), Some(&s.analyst), None);
    assert_eq!(status, 200);
    drop(b);

    // Another role cannot decide, through the API or the page; forged forms are refused.
    let (status, v) = s.api("POST", &format!("/v1/objects/{a}/decisions"), &s.station, Some(json!({"action": "reject", "reason": "bone"})));
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let csrf = |t: &str| tusk::serve::review::session::csrf(t);
    let form = format!("csrf={}&action=reject&reason=bone", csrf(&s.station));
    assert_eq!(raw("POST", &s.url(&format!("/objects/{a}/decide")), Some(&s.station), Some(&form)).0, 403);
    assert_eq!(raw("POST", &s.url(&format!("/objects/{a}/decide")), Some(&s.analyst), Some("action=reject&reason=bone")).0, 403, "no CSRF value");
    assert_eq!(raw("POST", &s.url(&format!("/objects/{a}/decide")), None, Some("action=reject&reason=bone")).1, format!("/signin?next=/objects/{a}/decide"));
    assert_eq!(last_action(&s, a).0, "confirm", "nothing changed");
    assert!(!s.log().contains(&s.analyst), "no token in the log");
}

/// The decisions API on its own: validation, undo rules, paging.
#[test]
fn decisions_api_checks_what_it_is_given() {
    let s = Server::start();
    let (_, q) = s.api("GET", "/v1/clusters", &s.analyst, None);
    assert!(q["clusters"].is_array());
    let id: i64 = common::count(&s.dir.path().join("demo.db"), "SELECT MIN(object_id) FROM detections WHERE flagged = 1");
    let post = |body: Value| s.api("POST", &format!("/v1/objects/{id}/decisions"), &s.analyst, Some(body));
    for (body, code) in [
        (json!({"action": "reject"}), "bad_decision"),
        (json!({"action": "reject", "reason": "because"}), "bad_decision"),
        (json!({"action": "maybe"}), "bad_decision"),
        (json!({"action": "undo"}), "bad_decision"),
        (json!({"action": "confirm", "boxes": [{"label": "ivory", "box": [10, 10, 5, 20]}]}), "bad_decision"),
        (json!({"action": "confirm", "colour": "red"}), "bad_decision"),
    ] {
        let (status, v) = post(body.clone());
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(code)), "{body}");
    }
    assert_eq!(s.api("POST", "/v1/objects/999999/decisions", &s.analyst, Some(json!({"action": "confirm"}))).0, 404);
    let (status, v) = post(json!({"action": "reject", "reason": "toy_or_replica", "note": "plastic"}));
    assert_eq!(status, 201, "{v}");
    let reject = v["decisions"][0].clone();
    assert_eq!((reject["who"].as_str(), reject["reason"].as_str(), reject["object_id"].as_i64()), (Some("ana"), Some("toy_or_replica"), Some(id)));
    let (status, _) = post(json!({"action": "undo", "undoes": reject["id"]}));
    assert_eq!(status, 201);
    let (status, v) = post(json!({"action": "undo", "undoes": reject["id"]}));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("nothing_to_undo")));
    let all = s.decisions(id);
    assert_eq!(all.iter().map(|d| d["action"].as_str().unwrap()).collect::<Vec<_>>(), ["reject", "undo"]);
    let (_, page) = s.api("GET", &format!("/v1/decisions?after={}&limit=1", reject["id"]), &s.analyst, None);
    assert_eq!(page["decisions"][0]["action"], "undo");
    assert_eq!(s.api("GET", "/v1/decisions?colour=red", &s.analyst, None).0, 400);
    assert_eq!(s.api("GET", "/v1/decisions", &s.crawler, None).0, 403);
    let (_, doc) = s.api("GET", "/v1/openapi.json", &s.analyst, None);
    assert!(doc["paths"]["/v1/objects/{id}/decisions"].is_object() && doc["paths"]["/v1/decisions"].is_object());
}

/// Waits up to 10 s for `done`.
fn wait_for(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A committed X-ray fixture the committed model flags.
fn first_flagged_scan() -> &'static str {
    "fx_15_gray16.png"
}

/// Reviewed flags measure the models (`tusk eval --reviewed`) and become training data
/// (`tusk export reviewed`) in the layouts the training scripts read.
#[test]
fn reviewed_flags_measure_models_and_export_training_data() {
    let s = Server::start();
    let db = s.dir.path().join("demo.db");
    let scan = s.post_picture("/v1/scans?station=gate-3", &s.station, "image/png", &std::fs::read(common::root().join("tests/fixtures/xray").join(first_flagged_scan())).unwrap());
    let scan_id = scan["object_id"].as_i64().unwrap();
    let flagged: Vec<i64> = {
        let (_, q) = s.api("GET", "/v1/decisions", &s.analyst, None);
        assert_eq!(q["decisions"], json!([]));
        let ids = common::query_ids(&db, "SELECT DISTINCT d.object_id FROM detections d JOIN objects o ON o.id = d.object_id WHERE d.flagged = 1 AND o.kind = 'listing' ORDER BY 1");
        assert!(ids.len() >= 3, "{ids:?}");
        ids
    };
    let decide = |id: i64, body: Value| assert_eq!(s.api("POST", &format!("/v1/objects/{id}/decisions"), &s.analyst, Some(body)).0, 201);
    decide(flagged[0], json!({"action": "confirm"}));
    decide(flagged[1], json!({"action": "confirm"}));
    decide(flagged[2], json!({"action": "reject", "reason": "resin", "note": "mould seam"}));
    decide(scan_id, json!({"action": "confirm", "boxes": [{"label": "live_reptile", "box": [10, 20, 110, 220]}]}));
    // An undone decision does not count.
    let (_, v) = s.api("POST", &format!("/v1/objects/{}/decisions", flagged[0]), &s.analyst, Some(json!({"action": "reject", "reason": "bone"})));
    decide(flagged[0], json!({"action": "undo", "undoes": v["decisions"][0]["id"]}));

    let out = common::tusk(&["eval", "--reviewed", "--db", db.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_str(&common::succeeded(out, "tusk eval --reviewed")).unwrap();
    let rows = report["reviewed"].as_array().unwrap();
    let row = |model: &str, label: &str| rows.iter().find(|r| r["model"] == model && r["label"] == label).cloned().unwrap_or_else(|| panic!("no {model}/{label} in {report}"));
    let ivory = row("listing-v1", "ivory");
    assert_eq!((ivory["confirmed"].as_u64(), ivory["rejected"].as_u64()), (Some(2), Some(1)), "{ivory}");
    assert!((ivory["precision"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    // 2 of 3 confirmed pins precision down to 9.4 %-99.2 % (SciPy's beta quantiles)
    let interval = &ivory["precision_interval_95"];
    assert!((interval[0].as_f64().unwrap() - 0.0943).abs() < 1e-3 && (interval[1].as_f64().unwrap() - 0.9916).abs() < 1e-3, "{ivory}");
    assert_eq!(ivory["reasons"], json!({"resin": 1}));
    assert_eq!(row("xray-v4", "live_reptile")["confirmed"], 1);
    let table = common::succeeded(common::tusk(&["eval", "--reviewed", "--db", db.to_str().unwrap()]), "tusk eval --reviewed");
    assert!(table.contains("listing-v1") && table.contains("0.667") && table.contains("0.09-0.99"), "{table}");

    // Listing photos as scripts/train's labels.csv, pictures beside it.
    let csv_dir = s.dir.path().join("export-csv");
    let demo = common::demo_dir();
    let said = common::succeeded(common::tusk(&["export", "reviewed", "--format", "csv", "--db", db.to_str().unwrap(), "--out", csv_dir.to_str().unwrap(), "--images", demo.to_str().unwrap()]), "tusk export reviewed");
    assert!(said.contains("exported 3 pictures"), "{said}");
    let labels = std::fs::read_to_string(csv_dir.join("labels.csv")).unwrap();
    let lines: Vec<&str> = labels.lines().collect();
    assert!(lines[0].starts_with("file,label,detail,group,source,license,"));
    let mut taught: Vec<&str> = lines[1..].iter().map(|l| l.split(',').nth(1).unwrap()).collect();
    taught.sort_unstable();
    assert_eq!(taught, ["ivory", "ivory", "ivory_lookalike"]);
    for l in &lines[1..] {
        let file = l.split(',').next().unwrap();
        assert!(image::open(csv_dir.join(file)).is_ok(), "{file} is a picture");
    }

    // Scans as COCO plus the detector's manifest/boxes CSVs, with the reviewer's box.
    let coco_dir = s.dir.path().join("export-coco");
    let said = common::succeeded(common::tusk(&["export", "reviewed", "--format", "coco", "--db", db.to_str().unwrap(), "--out", coco_dir.to_str().unwrap()]), "tusk export reviewed");
    assert!(said.contains("exported 1 pictures (1 boxes)"), "{said}");
    let coco: Value = serde_json::from_slice(&std::fs::read(coco_dir.join("annotations.json")).unwrap()).unwrap();
    assert_eq!(coco["annotations"][0]["bbox"], json!([10.0, 20.0, 100.0, 200.0]));
    assert_eq!(coco["categories"][coco["annotations"][0]["category_id"].as_u64().unwrap() as usize - 1]["name"], "live_reptile");
    let file = coco["images"][0]["file_name"].as_str().unwrap();
    assert!(image::open(coco_dir.join(file)).is_ok());
    let boxes = std::fs::read_to_string(coco_dir.join("boxes.csv")).unwrap();
    assert_eq!(boxes.lines().nth(1), Some(format!("{file},live_reptile,10.0,20.0,110.0,220.0").as_str()));
    assert!(std::fs::read_to_string(coco_dir.join("manifest.csv")).unwrap().lines().nth(1).unwrap().starts_with(&format!("{file},")));
}
