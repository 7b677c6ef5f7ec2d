//! `tusk serve` as a station, a crawler and an analyst meet it: the real binary on a free
//! loopback port, a real HTTP client, real ONNX Runtime, a SQLite store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `tusk serve` with one token per role.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    station: String,
    crawler: String,
    analyst: String,
    admin: String,
}

use common::tusk_cmd;

impl Server {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("serve.db").display().to_string();
        Self::start_on(dir, &db, extra)
    }

    /// Starts on the store `db` (a SQLite path or a postgres:// url).
    fn start_on(dir: tempfile::TempDir, db: &str, extra: &[&str]) -> Self {
        let token = |role: &str| common::create_token(db, role, role);
        let (station, crawler, analyst, admin) = (token("station"), token("crawler"), token("analyst"), token("admin"));
        let data = dir.path().join("data");
        let mut args = vec!["--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (child, port) = common::spawn_serve(dir.path(), db, &args);
        Server { child: Some(child), port, dir, station, crawler, analyst, admin }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("serve.db")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Sends a request; (status, headers we look at, body).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, &[u8])>) -> Reply {
        let mut req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(60));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some((ct, bytes)) => req.set("Content-Type", ct).send_bytes(bytes),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let retry_after = resp.header("retry-after").map(str::to_string);
        let content_type = resp.header("content-type").unwrap_or("").to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).unwrap();
        Reply { status, retry_after, content_type, bytes }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id();
        Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "tusk serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

fn xray_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(common::root().join("tests/fixtures/xray"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "tiff"))
        .collect();
    v.sort();
    v
}

fn content_type(p: &Path) -> &'static str {
    if p.extension().is_some_and(|e| e == "tiff") {
        "image/tiff"
    } else {
        "image/png"
    }
}

fn demo(name: &str) -> Vec<u8> {
    std::fs::read(common::demo_dir().join("images").join(name)).unwrap()
}

#[test]
fn endpoints_roles_reposts_and_operations() {
    let s = Server::start(&[]);
    let scan_path = &xray_fixtures()[1];
    let scan = std::fs::read(scan_path).unwrap();
    let ct = content_type(scan_path);

    // Roles: no token and unknown tokens are 401, the wrong role 403, with JSON errors.
    assert_eq!(s.call("POST", "/v1/scans", None, Some((ct, &scan))).status, 401);
    let bad = s.call("POST", "/v1/scans", Some("tusk_not-a-token"), Some((ct, &scan)));
    assert_eq!((bad.status, bad.code().as_str()), (401, "unauthorized"));
    assert!(!String::from_utf8_lossy(&bad.bytes).contains("not-a-token"), "the token is not echoed");
    for (token, ok) in [(&s.station, true), (&s.crawler, false), (&s.analyst, false), (&s.admin, true)] {
        let r = s.call("POST", "/v1/scans?station=gate-3&parcel=p1", Some(token), Some((ct, &scan)));
        assert_eq!(r.status, if ok { 200 } else { 403 }, "{}", String::from_utf8_lossy(&r.bytes));
    }
    for (token, ok) in [(&s.station, false), (&s.crawler, true), (&s.analyst, false), (&s.admin, true)] {
        let r = s.call("POST", "/v1/listings?seller_id=ana", Some(token), Some(("image/jpeg", &demo("met_ivory_41975.jpg"))));
        assert_eq!(r.status, if ok { 200 } else { 403 });
    }
    for (token, ok) in [(&s.station, false), (&s.crawler, false), (&s.analyst, true), (&s.admin, true)] {
        assert_eq!(s.call("GET", "/v1/clusters", Some(token), None).status, if ok { 200 } else { 403 });
    }

    // The same scan posted again: the same object, one row.
    let first = s.call("POST", "/v1/scans", Some(&s.station), Some((ct, &scan))).json();
    let again = s.call("POST", "/v1/scans", Some(&s.station), Some((ct, &scan))).json();
    assert_eq!(first["object_id"], again["object_id"]);
    assert_eq!(first["detections"], again["detections"]);
    assert_eq!(common::count(&s.db(), "SELECT COUNT(*) FROM objects WHERE kind = 'xray'"), 1);
    assert_eq!(first["schema_version"], 1);
    assert!(first["models"]["xray-v4"].is_string());
    let id = first["object_id"].as_i64().unwrap();

    // The stored object reads back the same; its overlay is the scan with boxes.
    let stored = s.call("GET", &format!("/v1/objects/{id}"), Some(&s.analyst), None).json();
    assert_eq!(stored["detections"], first["detections"]);
    assert_eq!(stored["scores"], first["scores"]);
    let overlay = s.call("GET", first["overlay"].as_str().unwrap(), Some(&s.analyst), None);
    assert_eq!((overlay.status, overlay.content_type.as_str()), (200, "image/png"));
    let drawn = image::load_from_memory(&overlay.bytes).unwrap();
    assert_eq!((drawn.width() as u64, drawn.height() as u64), (first["width"].as_u64().unwrap(), first["height"].as_u64().unwrap()));
    assert_eq!(s.call("GET", "/v1/objects/999999", Some(&s.analyst), None).code(), "not_found");

    // A re-post by another seller is matched at once, with evidence.
    let repost = s.call("POST", "/v1/listings?seller_id=zed&listing_id=l9&platform=market", Some(&s.crawler), Some(("image/jpeg", &demo("reposted_ivory_41975.jpg")))).json();
    let matches = repost["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0]["seller_id"], "ana");
    assert_eq!(matches[0]["matched"], true);
    assert!(matches[0]["decided_by"].is_string());
    let unrelated = s.call("POST", "/v1/listings?seller_id=bo", Some(&s.crawler), Some(("image/jpeg", &demo("met_ivory_193713.jpg")))).json();
    assert_eq!(unrelated["matches"], Value::Array(vec![]));
    let pdq = repost["hashes"]["pdq"].as_str().unwrap();
    let by_hash = s.call("GET", &format!("/v1/match?hash={pdq}"), Some(&s.analyst), None).json();
    assert!(by_hash["matches"].as_array().unwrap().len() >= 2, "{by_hash}");
    let by_photo = s.call("POST", "/v1/match", Some(&s.analyst), Some(("image/jpeg", &demo("met_ivory_41975.jpg")))).json();
    assert!(by_photo["matches"].as_array().unwrap().iter().any(|m| m["seller_id"] == "zed"), "{by_photo}");
    let clusters = s.call("GET", "/v1/clusters", Some(&s.analyst), None).json();
    assert_eq!(clusters["clusters"][0]["sellers"], serde_json::json!(["ana", "zed"]));
    let links = s.call("GET", "/v1/sellers/zed/links", Some(&s.analyst), None).json();
    assert_eq!(links["links"][0]["source"], "ana");
    assert_eq!(links["links"][0]["target"], "zed");

    // The OpenAPI document, health, readiness and metrics.
    let doc = s.call("GET", "/v1/openapi.json", Some(&s.station), None).json();
    for path in ["/v1/scans", "/v1/listings", "/v1/objects/{id}", "/v1/match", "/v1/clusters", "/v1/sellers/{id}/links"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert_eq!(s.call("GET", "/readyz", None, None).status, 200);
    let metrics = String::from_utf8(s.call("GET", "/metrics", None, None).bytes).unwrap();
    assert!(metrics.contains("tusk_http_requests_total{route=\"/v1/scans\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("tusk_http_request_duration_seconds_bucket{route=\"/v1/scans\",status=\"2xx\",le=\"0.1\"}"));
    assert!(metrics.contains("tusk_inference_seconds_count{model=\"xray-v4\"}"));
    assert!(!s.log().contains(&s.station), "no token in the log");

    // A revoked token stops working within the reload interval.
    common::succeeded(tusk_cmd(&["token", "revoke", "analyst", "--db", s.db().to_str().unwrap()]).output().unwrap(), "token revoke");
    let started = Instant::now();
    while s.call("GET", "/v1/clusters", Some(&s.analyst), None).status != 401 {
        assert!(started.elapsed() < Duration::from_secs(10), "revocation not seen");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// For the same scans, `POST /v1/scans` and `tusk scan` give the same detections.
#[test]
fn posted_scans_get_the_detections_of_tusk_scan() {
    let s = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("scan.jsonl");
    let fixtures = common::root().join("tests/fixtures/xray");
    common::scan_ok(&fixtures, &dir.path().join("scan.db"), &["--kind", "xray", "--jsonl", jsonl.to_str().unwrap()]);
    let scanned: Vec<Value> = common::jsonl(&jsonl);
    let mut flagged = 0;
    for path in xray_fixtures() {
        let posted = s.call("POST", "/v1/scans", Some(&s.station), Some((content_type(&path), &std::fs::read(&path).unwrap()))).json();
        let name = path.file_name().unwrap().to_str().unwrap();
        let line = scanned.iter().find(|l| l["uri"].as_str().unwrap().ends_with(name)).unwrap();
        assert_eq!(posted["flagged"], line["flagged"], "{name}");
        assert_eq!(posted["scores"], line["scores"], "{name}");
        assert_eq!(posted["detections"], line["detections"], "{name}");
        assert_eq!(posted["hashes"], line["hashes"], "{name}");
        flagged += usize::from(line["flagged"] == true);
    }
    assert!(flagged > 0, "the fixtures include flagged scans");
}

/// Hostile and wrong requests get 4xx with stable codes (a picture's failure code is the one
/// `tusk scan` records for the same bytes) while a well-behaved station gets every answer.
#[test]
fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let s = Server::start(&["--max-body-mb", "1", "--max-in-flight", "4"]);
    let jpeg = demo("met_ivory_41975.jpg");
    let truncated = jpeg[..jpeg.len() * 6 / 10].to_vec();
    let bomb = common::png_claiming(100_000, 100_000);
    let text = b"this is a text file, not a photo\n".to_vec();
    // What `tusk scan` records for the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for (name, bytes) in [("truncated.jpg", &truncated), ("bomb.png", &bomb), ("text.jpg", &text)] {
        std::fs::write(images.join(name), bytes).unwrap();
    }
    common::scan_ok(&images, &dir.path().join("t.db"), &[]);
    let reason = |file: &str| common::pairs(&dir.path().join("t.db"), &format!("SELECT reason, uri FROM failures WHERE uri LIKE '%/{file}'"))[0].0.clone();

    let good_path = &xray_fixtures()[0];
    let good = std::fs::read(good_path).unwrap();
    let good_ct = content_type(good_path);
    let well_behaved = std::thread::scope(|scope| {
        let station = scope.spawn(|| (0..15).map(|_| s.call("POST", "/v1/scans", Some(&s.station), Some((good_ct, &good))).status).collect::<Vec<_>>());
        let big = vec![0u8; 2 * 1024 * 1024];
        let cases: Vec<(&str, &str, Vec<u8>, u16, String)> = vec![
            ("/v1/scans", "image/png", vec![], 400, "empty_file".into()),
            ("/v1/scans", "text/plain", text.clone(), 415, "unsupported_media_type".into()),
            ("/v1/scans", "image/jpeg", truncated.clone(), 422, reason("truncated.jpg")),
            ("/v1/scans", "image/png", bomb.clone(), 422, reason("bomb.png")),
            ("/v1/listings", "image/jpeg", text.clone(), 422, reason("text.jpg")),
            ("/v1/scans", "image/png", big, 413, "body_too_large".into()),
            ("/v1/scans", "application/dicom", b"DICM".to_vec(), 422, "dicos_malformed".into()),
            ("/v1/listings", "application/dicom", b"DICM".to_vec(), 415, "dicos_unsupported".into()),
            ("/v1/scans?belt=4", "image/jpeg", jpeg.clone(), 400, "unknown_query_key".into()),
        ];
        for round in 0..3 {
            for (path, ct, body, status, code) in &cases {
                let token = if path.starts_with("/v1/listings") { &s.crawler } else { &s.station };
                let r = s.call("POST", path, Some(token), Some((ct, body)));
                assert_eq!((r.status, r.code()), (*status, code.clone()), "round {round}: {path} {ct}");
            }
        }
        station.join().unwrap()
    });
    assert_eq!(well_behaved, vec![200; 15], "the well-behaved station got every answer");
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
}

/// Past --max-in-flight the server answers 503 with Retry-After at once; nothing times out.
#[test]
fn overload_is_shed_with_503() {
    let s = Server::start(&["--max-in-flight", "1"]);
    let path = &xray_fixtures()[0];
    let scan = std::fs::read(path).unwrap();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| (0..4).map(|_| s.call("POST", "/v1/scans", Some(&s.station), Some((content_type(path), &scan)))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let shed: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + shed.len(), replies.len(), "only 200s and 503s");
    assert!(ok > 0 && !shed.is_empty(), "{ok} answered, {} shed", shed.len());
    assert!(shed.iter().all(|r| r.retry_after.as_deref() == Some("1") && r.code() == "overloaded"));
    let metrics = String::from_utf8(s.call("GET", "/metrics", None, None).bytes).unwrap();
    assert!(metrics.contains(&format!("tusk_http_shed_total {}", shed.len())), "{metrics}");
    // Clients that hang up mid-request cancel nothing halfway: the server keeps answering.
    for ms in [10, 20, 30, 40, 60, 80] {
        let req = ureq::post(&s.url("/v1/scans")).timeout(Duration::from_millis(ms));
        let _ = req.set("Authorization", &format!("Bearer {}", s.station)).set("Content-Type", content_type(path)).send_bytes(&scan);
    }
    let started = Instant::now();
    loop {
        let r = s.call("POST", "/v1/scans", Some(&s.station), Some((content_type(path), &scan)));
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.bytes));
        assert!(started.elapsed() < Duration::from_secs(30), "no answer after clients hung up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads one HTTP/1.1 response from a raw connection: its status line and its body (by
/// Content-Length).
fn raw_response(conn: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + len]).to_string();
                return (head.lines().next().unwrap_or("").to_string(), body);
            }
        }
        let n = conn.read(&mut buf).expect("the server answers");
        assert!(n > 0, "the connection closed before a whole answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// An accepted request holds its place while its body arrives: a full server refuses the next
/// at once, a client that waits for `100 Continue` is refused without sending its body, and a
/// body that stalls is answered 408 and frees the place.
#[test]
fn the_place_is_taken_before_the_body_and_slow_bodies_time_out() {
    use std::io::Write;
    let s = Server::start(&["--max-in-flight", "1", "--body-timeout-secs", "2"]);
    let path = &xray_fixtures()[0];
    let scan = std::fs::read(path).unwrap();
    let head = |expect: bool| {
        format!(
            "POST /v1/scans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
            s.station,
            content_type(path),
            scan.len(),
            if expect { "Expect: 100-continue\r\n" } else { "" }
        )
    };
    // A station sends half its scan and stalls: it holds the only place.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    slow.write_all(head(false).as_bytes()).unwrap();
    slow.write_all(&scan[..scan.len() / 2]).unwrap();
    let stalled = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    // Another waits for 100 Continue: it hears 503 and never sends its body.
    let mut polite = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    polite.write_all(head(true).as_bytes()).unwrap();
    let (status, body) = raw_response(&mut polite);
    assert!(status.contains(" 503 "), "{status}: {body}");
    assert!(body.contains("\"overloaded\""), "{body}");
    // The stalled body runs out of time: 408, after --body-timeout-secs and not long after.
    let (status, body) = raw_response(&mut slow);
    assert!(status.contains(" 408 "), "{status}: {body}");
    assert!(body.contains("\"body_timeout\""), "{body}");
    let waited = stalled.elapsed();
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(20), "408 after {waited:?}");
    // The place is free again: a client waiting for 100 Continue gets it, sends, is answered.
    let mut next = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    next.write_all(head(true).as_bytes()).unwrap();
    let (status, _) = raw_response(&mut next);
    assert!(status.contains(" 100 "), "{status}");
    next.write_all(&scan).unwrap();
    let (status, body) = raw_response(&mut next);
    assert!(status.contains(" 200 "), "{status}: {body}");
    assert!(body.contains("\"detections\""), "{body}");
}

/// SIGTERM while stations are posting: every scan that got a 200 is stored, the server exits 0.
#[test]
fn graceful_shutdown_loses_no_accepted_scan() {
    let mut s = Server::start(&[]);
    let scans: Vec<(PathBuf, Vec<u8>)> = xray_fixtures().into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    let accepted = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let (s, scans) = (&s, &scans);
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0.. {
                        let (path, bytes) = &scans[(t + i) % scans.len()];
                        let req = ureq::post(&s.url("/v1/scans")).set("Authorization", &format!("Bearer {}", s.station)).set("Content-Type", content_type(path));
                        match req.send_bytes(bytes) {
                            Ok(r) => ids.push(r.into_json::<Value>().unwrap()["object_id"].as_i64().unwrap()),
                            Err(ureq::Error::Status(503, _)) => std::thread::sleep(Duration::from_millis(50)),
                            Err(ureq::Error::Status(code, _)) => panic!("status {code} before shutdown"),
                            Err(_) => break, // the server stopped listening
                        }
                    }
                    ids
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        s.signal("-TERM");
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect::<Vec<i64>>()
    });
    let status = s.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(accepted.len() > 3, "only {} scans answered before shutdown", accepted.len());
    for id in accepted {
        assert_eq!(common::count(&s.db(), &format!("SELECT COUNT(*) FROM objects WHERE id = {id}")), 1, "accepted scan {id} not stored");
    }
}

/// The service on the fleet's PostgreSQL store: a re-post is matched, and what the service
/// stored is what `tusk match` reads from the same database.
#[test]
fn serves_from_a_postgres_store() {
    let pg = common::pgserver::PgServer::start();
    let url = pg.new_database();
    let s = Server::start_on(tempfile::tempdir().unwrap(), &url, &[]);
    let first = s.call("POST", "/v1/listings?seller_id=ana", Some(&s.crawler), Some(("image/jpeg", &demo("met_ivory_41975.jpg"))));
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.bytes));
    let repost = s.call("POST", "/v1/listings?seller_id=zed", Some(&s.crawler), Some(("image/jpeg", &demo("reposted_ivory_41975.jpg")))).json();
    assert_eq!(repost["matches"][0]["seller_id"], "ana", "{repost}");
    let out = common::succeeded(tusk_cmd(&["match", "--seller", "zed", "--db", &url, "--json"]).output().unwrap(), "tusk match");
    let found: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["seller_id"], "ana");
    assert_eq!(common::pgserver::psql(&url, "SELECT COUNT(*) FROM objects"), "2");
}
