//! DICOS through `tusk serve`, as a screening station meets it: the real binary on a free
//! loopback port, a real HTTP client, real ONNX Runtime. The DX objects are written by pydicom
//! (scripts/dicos_dx.py) from the simulated 16-bit scans in tests/fixtures/xray, and the Threat
//! Detection Reports tusk answers are read back by pydicom (scripts/read_tdr.py): neither side
//! of the round trip is checked by the code that wrote it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

const DX_FOR_PROCESSING: &str = "1.2.840.10008.5.1.4.1.1.501.2.2";
const TDR: &str = "1.2.840.10008.5.1.4.1.1.501.3";

/// A running `tusk serve` with a token per role it is called with.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    station: String,
    crawler: String,
    analyst: String,
}


impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("serve.db").display().to_string();
        let token = |role: &str| common::create_token(&db, role, role);
        let (station, crawler, analyst) = (token("station"), token("crawler"), token("analyst"));
        let data = dir.path().join("data");
        let (child, port) = common::spawn_serve(dir.path(), &db, &["--data", data.to_str().unwrap(), "--max-in-flight", "4"]);
        Server { child, port, dir, station, crawler, analyst }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("serve.db")
    }

    /// Posts `body` as `content_type` to `path` with `token` (and `accept`).
    fn post(&self, path: &str, token: &str, content_type: &str, body: &[u8], accept: Option<&str>) -> Reply {
        let mut req = ureq::post(&self.url(path)).timeout(Duration::from_secs(60)).set("Authorization", &format!("Bearer {token}")).set("Content-Type", content_type);
        if let Some(a) = accept {
            req = req.set("Accept", a);
        }
        Reply::from(req.send_bytes(body), path)
    }

    /// GETs `path` as an analyst.
    fn get(&self, path: &str) -> Reply {
        let req = ureq::get(&self.url(path)).timeout(Duration::from_secs(60)).set("Authorization", &format!("Bearer {}", self.analyst));
        Reply::from(req.call(), path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
}

impl Reply {
    fn from(result: Result<ureq::Response, ureq::Error>, path: &str) -> Self {
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("content-type").unwrap_or("").to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).unwrap();
        Reply { status, content_type, bytes }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

fn python() -> PathBuf {
    let python = std::env::var_os("TUSK_PYTHON").map(PathBuf::from).unwrap_or_else(|| common::root().join(".venv/bin/python"));
    assert!(python.exists(), "the DICOS tests need Python with pydicom: {} is missing (run scripts/setup-python.sh)", python.display());
    python
}

fn fixture(name: &str) -> PathBuf {
    common::root().join("tests/fixtures/xray").join(name)
}

/// Writes a DICOS DX of `scan` with pydicom (scripts/dicos_dx.py `args`); its bytes and SOP
/// Instance UID.
fn dicos_dx(scan: &Path, dir: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let out = dir.join(format!("dx-{}.dcs", args.join("").replace(['-', ' '], "")));
    let run = Command::new(python()).arg(common::root().join("scripts/dicos_dx.py")).arg(scan).arg(&out).args(args).output().unwrap();
    let uid = common::succeeded(run, "scripts/dicos_dx.py").trim().to_string();
    (std::fs::read(&out).unwrap(), uid)
}

/// What pydicom reads in a Threat Detection Report (scripts/read_tdr.py).
fn read_tdr(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.dcs");
    std::fs::write(&path, bytes).unwrap();
    let run = Command::new(python()).arg(common::root().join("scripts/read_tdr.py")).arg(&path).output().unwrap();
    serde_json::from_str(&common::succeeded(run, "scripts/read_tdr.py")).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// The report pydicom reads says what the JSON answer says: the decision, one CONTRABAND threat
/// per detection with its label, score and box, pointing at the DX.
fn assert_report_matches(report: &Value, answer: &Value, dx: Option<(&str, Option<i64>)>, what: &str) {
    assert_eq!(report["sop_class_uid"], TDR, "{what}");
    assert_eq!(report["media_storage_sop_class_uid"], TDR, "{what}");
    assert_eq!(report["transfer_syntax"], "1.2.840.10008.1.2.1", "{what}");
    assert_eq!(report["modality"], "TDR", "{what}");
    assert_eq!(report["tdr_type"], "MACHINE", "{what}");
    assert_eq!(report["abort_flag"], "SUCCESS", "{what}");
    let flagged = answer["flagged"].as_bool().unwrap();
    assert_eq!(report["alarm_decision"], if flagged { "ALARM" } else { "CLEAR" }, "{what}");
    let detections = answer["detections"].as_array().unwrap();
    assert_eq!(report["total_objects"].as_u64().unwrap() as usize, detections.len(), "{what}");
    assert_eq!(report["alarm_objects"].as_u64().unwrap() as usize, detections.len(), "{what}");
    let threats = report["threats"].as_array().unwrap();
    assert_eq!(threats.len(), detections.len(), "{what}: {report}");
    let algorithm: Vec<&str> = report["algorithm"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(algorithm[0], "tusk", "{what}");
    assert!(algorithm.iter().any(|a| a.starts_with("xray-v4 ")), "{what}: {algorithm:?}");
    for (i, (t, d)) in threats.iter().zip(detections).enumerate() {
        assert_eq!(t["id"], i, "{what}");
        assert_eq!(t["category"], "CONTRABAND", "{what}");
        assert_eq!(t["description"], d["label"], "{what}");
        assert_eq!(t["flag"], "THREAT", "{what}");
        // JSON scores are rounded to 6 decimals; the report holds the f32 score.
        let (p, score) = (t["probability"].as_f64().unwrap(), d["score"].as_f64().unwrap());
        assert!((p - score).abs() <= 1e-6, "{what}: probability {p} vs score {score}");
        assert_eq!(floats(&t["box"]), floats(&d["box"]), "{what}");
        let refs = t["references"].as_array().unwrap();
        match dx {
            Some((uid, frame)) => {
                assert_eq!(refs.len(), 1, "{what}");
                assert_eq!(refs[0]["sop_class_uid"], DX_FOR_PROCESSING, "{what}");
                assert_eq!(refs[0]["sop_instance_uid"], uid, "{what}");
                assert_eq!(refs[0]["frame"].as_i64(), frame, "{what}");
            }
            None => assert!(refs.is_empty(), "{what}: {refs:?}"),
        }
    }
}

/// DX objects written by pydicom get exactly the detections of posting the same pixels as a
/// 16-bit PNG or TIFF; with `Accept: application/dicom` the answer is a TDR that pydicom reads
/// back as the same verdict, for flagged and clear scans.
#[test]
fn dicos_scans_get_the_verdict_of_the_same_pixels_and_a_report_pydicom_reads() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // Both flagged by the shipped model (tests/xray.rs): a live reptile and pangolin scales.
    for (name, content_type) in [("fx_15_gray16.png", "image/png"), ("fx_02_gray16.tiff", "image/tiff")] {
        let scan = fixture(name);
        let as_picture = s.post("/v1/scans", &s.station, content_type, &std::fs::read(&scan).unwrap(), None).json();
        assert_eq!(as_picture["flagged"], true, "{name}: {as_picture}");
        let variants: [&[&str]; 3] = [&[], &["--frames", "2", "--monochrome1", "--no-preamble"], &["--implicit"]];
        for variant in variants {
            let what = format!("{name} {variant:?}");
            let mut args = vec!["--station", "gate-7", "--parcel", "P-1"];
            args.extend_from_slice(variant);
            let (dcs, uid) = dicos_dx(&scan, dir.path(), &args);

            let answer = s.post("/v1/scans", &s.station, "application/dicom", &dcs, None);
            assert_eq!((answer.status, answer.content_type.as_str()), (200, "application/json"), "{what}: {}", String::from_utf8_lossy(&answer.bytes));
            let answer = answer.json();
            for key in ["flagged", "detections", "scores", "hashes", "width", "height"] {
                assert_eq!(answer[key], as_picture[key], "{what}: {key}");
            }
            assert_eq!(answer["uri"], format!("upload://scans/{}", sha(&dcs)), "{what}");
            // The overlay is drawn on the DX's pixels.
            let overlay = s.get(answer["overlay"].as_str().unwrap());
            assert_eq!((overlay.status, overlay.content_type.as_str()), (200, "image/png"), "{what}");
            let drawn = image::load_from_memory(&overlay.bytes).unwrap();
            assert_eq!((drawn.width() as u64, drawn.height() as u64), (answer["width"].as_u64().unwrap(), answer["height"].as_u64().unwrap()));
            // Station and parcel come from the DX when the query names none.
            let stored = common::pairs(&s.db(), &format!("SELECT uri, meta FROM objects WHERE uri = 'upload://scans/{}'", sha(&dcs)));
            let meta: Value = serde_json::from_str(&stored[0].1).unwrap();
            assert_eq!((meta["station"].as_str(), meta["parcel"].as_str()), (Some("gate-7"), Some("P-1")), "{what}");

            let tdr = s.post("/v1/scans", &s.station, "application/dicom", &dcs, Some("application/dicom"));
            assert_eq!((tdr.status, tdr.content_type.as_str()), (200, "application/dicom"), "{what}: {}", String::from_utf8_lossy(&tdr.bytes));
            let report = read_tdr(&tdr.bytes);
            let frame = variant.contains(&"--frames").then_some(1);
            assert_report_matches(&report, &answer, Some((&uid, frame)), &what);
            assert_eq!((report["patient_id"].as_str(), report["station_name"].as_str(), report["ooi_type"].as_str()), (Some("P-1"), Some("gate-7"), Some("BAGGAGE")), "{what}");
            // The same scan judged by the same models is the same report instance.
            let again = read_tdr(&s.post("/v1/scans", &s.station, "application/dicom", &dcs, Some("application/dicom")).bytes);
            assert_eq!(again["sop_instance_uid"], report["sop_instance_uid"], "{what}");
            assert_ne!(report["sop_instance_uid"], uid, "{what}");
        }
    }

    // A parcel with no wildlife: CLEAR, no threat objects.
    let (dcs, uid) = dicos_dx(&fixture("fx_28_gray16.tiff"), dir.path(), &[]);
    let answer = s.post("/v1/scans", &s.station, "application/dicom", &dcs, None).json();
    assert_eq!(answer["flagged"], false, "{answer}");
    let report = read_tdr(&s.post("/v1/scans", &s.station, "application/dicom", &dcs, Some("application/dicom")).bytes);
    assert_report_matches(&report, &answer, Some((&uid, None)), "fx_28 (clear)");
    assert_eq!(report["threats"], serde_json::json!([]));

    // A scan posted as a picture may ask for a report too (no DX to point at); JSON stays the
    // default, and wins when listed first.
    let png = std::fs::read(fixture("fx_15_gray16.png")).unwrap();
    let answer = s.post("/v1/scans?parcel=P-9", &s.station, "image/png", &png, Some("application/json, application/dicom")).json();
    let tdr = s.post("/v1/scans?parcel=P-9", &s.station, "image/png", &png, Some("application/dicom"));
    assert_eq!(tdr.content_type, "application/dicom");
    let report = read_tdr(&tdr.bytes);
    assert_report_matches(&report, &answer, None, "fx_15 as PNG");
    assert_eq!(report["patient_id"], "P-9");
}

/// Broken, hostile and unsupported DICOS get 4xx with stable codes (stored as failure records
/// with the same reasons) while a station posting good DICOS gets every answer.
#[test]
fn bad_dicos_gets_stable_codes_and_the_server_keeps_serving() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let scan = fixture("fx_15_gray16.png");
    let (good, _) = dicos_dx(&scan, dir.path(), &[]);
    let mut garbage = good[..132].to_vec();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    garbage.extend((0..4096).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    // Pixel Data announcing 4 GiB in a file of 300 kB.
    let mut lying = good.clone();
    let at = lying.windows(4).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00]).unwrap();
    lying[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    // What the image decoder says for a PNG claiming too many pixels.
    let png_bomb = s.post("/v1/scans", &s.station, "image/png", &common::png_claiming(100_000, 100_000), None).code();

    let cases: Vec<(&str, Vec<u8>, u16, String)> = vec![
        ("truncated", good[..good.len() * 6 / 10].to_vec(), 422, "dicos_malformed".into()),
        ("garbage after DICM", garbage, 422, "dicos_malformed".into()),
        ("no DICM", b"this is not DICOM at all, just text".to_vec(), 422, "dicos_malformed".into()),
        ("length bomb", lying, 422, "dicos_malformed".into()),
        ("compressed", dicos_dx(&scan, dir.path(), &["--compressed"]).0, 415, "dicos_unsupported".into()),
        ("CT", dicos_dx(&scan, dir.path(), &["--ct"]).0, 415, "dicos_unsupported".into()),
        ("pixel bomb", dicos_dx(&scan, dir.path(), &["--claim", "60000x60000"]).0, 422, png_bomb.clone()),
    ];
    assert_eq!(png_bomb, "too_large");
    let well_behaved = std::thread::scope(|scope| {
        let station = scope.spawn(|| {
            (0..8)
                .map(|_| loop {
                    let r = s.post("/v1/scans", &s.station, "application/dicom", &good, Some("application/dicom"));
                    if r.status != 503 {
                        break (r.status, r.content_type);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                })
                .collect::<Vec<_>>()
        });
        for round in 0..2 {
            for (what, body, status, code) in &cases {
                let r = loop {
                    let r = s.post("/v1/scans", &s.station, "application/dicom", body, Some("application/dicom"));
                    if r.status != 503 {
                        break r;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                assert_eq!((r.status, r.code()), (*status, code.clone()), "round {round}: {what}: {}", String::from_utf8_lossy(&r.bytes));
                assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
            }
        }
        station.join().unwrap()
    });
    assert!(well_behaved.iter().all(|(status, ct)| *status == 200 && ct == "application/dicom"), "{well_behaved:?}");
    // The failure records hold the same codes.
    for (what, body, _, code) in &cases {
        let uri = format!("upload://scans/{}", sha(body));
        let stored = common::pairs(&s.db(), &format!("SELECT reason, uri FROM failures WHERE uri = '{uri}'"));
        assert_eq!(stored.first().map(|r| r.0.as_str()), Some(code.as_str()), "{what}");
    }
    // DICOS is for scans only.
    let listing = s.post("/v1/listings", &s.crawler, "application/dicom", &good, None);
    assert_eq!((listing.status, listing.code()), (415, "dicos_unsupported".to_string()));
    assert_eq!(ureq::get(&s.url("/healthz")).call().unwrap().status(), 200);
}
