//! What each fuzz target does with one input, shared by the targets (`fuzz/fuzz_targets/`,
//! which include this file) and by the regression test (`tests/fuzz_regressions.rs`), so a kept
//! input is replayed through exactly the code that found it.
//!
//! Every function takes outside bytes, runs them through tusk's own code, and asserts what
//! must hold whatever the bytes: a clean `Err` or a success, never a panic; and where the
//! bytes were accepted, results within the limits (pictures inside the decoder limits, tensors
//! of the model's size, a DICOS scan whose PNG decodes, no 5xx answer from `tusk serve` other
//! than 503).

#![allow(dead_code)] // each fuzz target uses one of these

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use image::RgbImage;
use tusk::decode::{decode, DecodeLimits};
use tusk::hash::PerceptualHasher;
use tusk::infer::manifest::ModelManifest;
use tusk::infer::preprocess;
use tusk::record::Record;
use tusk::reuse::features::FeatureExtractor;
use tusk::source::{Kind, ObjectMeta};

/// The targets, as named in `fuzz/Cargo.toml` and under `tests/fixtures/fuzz/`.
pub const TARGETS: [&str; 5] = ["image", "dicos", "manifest_line", "model_toml", "serve_http"];

/// Runs one input through the target `name`.
pub fn run(name: &str, bytes: &[u8]) {
    match name {
        "image" => image(bytes),
        "dicos" => dicos(bytes),
        "manifest_line" => manifest_line(bytes),
        "model_toml" => model_toml(bytes),
        "serve_http" => serve_http(bytes),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// The repository root (fuzz/ and pipeline/ are both one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed models' manifests: their input specs are what pictures are preprocessed to.
fn models() -> &'static [ModelManifest] {
    static MODELS: OnceLock<Vec<ModelManifest>> = OnceLock::new();
    MODELS.get_or_init(|| tusk::infer::manifest::discover(&root().join("models")).expect("the committed models/ load"))
}

thread_local! {
    static HASHER: RefCell<PerceptualHasher> = RefCell::new(PerceptualHasher::new());
    static FEATURES: RefCell<Option<FeatureExtractor>> = RefCell::new(FeatureExtractor::new().ok());
}

/// Image bytes as `tusk scan` and `tusk serve` prepare them, under the scan's decoder limits:
/// decode, preprocess for every committed model, hash as a listing photo (with views and ORB
/// features) and as a match query (the eight rotations and mirror images).
pub fn image(bytes: &[u8]) {
    let limits = DecodeLimits::default();
    let Ok(decoded) = decode(bytes, &limits) else { return };
    let rgb = decoded.rgb;
    let (w, h) = rgb.dimensions();
    assert!(w > 0 && h > 0 && w <= limits.max_width && h <= limits.max_height, "decoded {w}×{h}");
    assert!(u64::from(w) * u64::from(h) <= limits.max_pixels, "decoded {w}×{h}");
    for m in models() {
        let (tensor, placement) = preprocess::prepare(&rgb, &m.input);
        assert_eq!(tensor.len(), preprocess::tensor_len(&m.input), "{}", m.name);
        assert!(placement.scale_x > 0.0 && placement.scale_y > 0.0, "{}: {placement:?}", m.name);
    }
    let photo = HASHER.with(|hasher| {
        let mut hasher = hasher.borrow_mut();
        let (_, views, photo) = hasher.hash_with_views(&rgb);
        for v in &views {
            let [x0, y0, x1, y1] = v.rect;
            assert!(x0 < x1 && y0 < y1 && x1 <= w && y1 <= h, "view {} at {:?} of {w}×{h}", v.view, v.rect);
        }
        hasher.hash_query(&rgb);
        photo
    });
    FEATURES.with(|f| {
        if let Some(extractor) = f.borrow_mut().as_mut() {
            let _ = extractor.extract(&photo);
        }
    });
}

/// A DICOS object as `POST /v1/scans` reads it: `read_dx` under the decoder limits; an
/// accepted scan's PNG must decode within them, and a Threat Detection Report can be written
/// for it.
pub fn dicos(bytes: &[u8]) {
    let limits = DecodeLimits::default();
    let scan = match tusk::dicos::read_dx(bytes, &limits) {
        Ok(scan) => scan,
        Err(e) => {
            assert!(!e.reason().is_empty());
            return;
        }
    };
    let decoded = decode(&scan.png, &limits).unwrap_or_else(|e| panic!("read_dx made a PNG that does not decode: {e}"));
    let (w, h) = decoded.rgb.dimensions();
    assert!(u64::from(w) * u64::from(h) <= limits.max_pixels, "{w}×{h}");
    let record = Record::new("upload://scans/fuzz".into(), None, ObjectMeta { kind: Kind::Xray, ..Default::default() });
    let ctx = tusk::dicos::ReportContext {
        source: Some(&scan.meta),
        algorithm: vec!["tusk".into(), "fuzz".into()],
        seed: "fuzz".into(),
        parcel: None,
        decided_at: std::time::UNIX_EPOCH,
    };
    if let Err(e) = tusk::dicos::threat_detection_report(&record, &ctx) {
        panic!("no report for an accepted DX ({:?}): {e}", scan.meta);
    }
}

/// JSONL manifest lines as `tusk scan MANIFEST` reads them: each non-blank line parsed, and
/// an accepted one's record written as JSON.
pub fn manifest_line(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(item) = tusk::source::manifest::parse(line, Path::new("/manifests"), Kind::Listing) else { continue };
        let record = Record::new(item.uri, None, item.meta);
        let json = record.to_json_line();
        assert!(!json.contains('\n'), "a JSONL line with a line break: {json}");
        serde_json::from_str::<serde_json::Value>(&json).expect("the record line is JSON");
    }
}

/// A `model.toml` as `tusk` loads it: parsed and validated; an accepted manifest's input spec
/// then preprocesses pictures of a few shapes to tensors of its size.
pub fn model_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(m) = ModelManifest::parse(text, Path::new("/models/fuzz/model.toml")) else { return };
    for (w, h) in [(1, 1), (37, 23), (23, 37)] {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8]));
        let (tensor, _) = preprocess::prepare(&img, &m.input);
        assert_eq!(tensor.len(), preprocess::tensor_len(&m.input));
    }
}

/// Bearer tokens the fuzzed server knows, one per role (name = role).
pub const TOKENS: [(&str, &str); 4] = [("station", "fuzz-station"), ("crawler", "fuzz-crawler"), ("analyst", "fuzz-analyst"), ("admin", "fuzz-admin")];

/// `tusk serve`'s router in process, on a SQLite store in a temporary folder, with the
/// tokens of [`TOKENS`] and a Processor without models (decode, hash, DICOS and the store run;
/// inference does not).
pub struct Server {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    statuses: Arc<Mutex<Vec<u16>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts one.
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let router = rt.block_on(async {
            use tusk::serve::{App, ServeOptions};
            let store = tusk::store::Store::open(&tusk::store::Db::Sqlite(dir.path().join("serve.db"))).await.expect("the store opens");
            for (role, token) in TOKENS {
                store.add_token(role, role, &hex::encode(tusk::serve::auth::token_hash(token))).await.expect("token added");
            }
            let limits = DecodeLimits::default();
            let processor = tusk::pipeline::Processor::load(Vec::new(), 1, 1, limits).await.expect("a processor without models");
            let opts = ServeOptions {
                listen: "127.0.0.1:0".parse().expect("an address"),
                max_in_flight: 2,
                max_body_bytes: 1 << 20,
                body_timeout: std::time::Duration::from_secs(10),
                limits,
                data_dir: dir.path().join("data"),
                images: vec![root().join("datasets/demo")],
            };
            let app = Arc::new(App::new(store, processor, opts).await.expect("the app starts"));
            tusk::serve::router(app).layer(axum::middleware::from_fn_with_state(statuses.clone(), record_status))
        });
        Server { rt, router, statuses, _dir: dir }
    }

    /// Sends `bytes` as one HTTP/1.1 connection (any number of pipelined requests) through
    /// hyper's server and the router; returns the statuses the router answered, in order.
    pub fn exchange(&self, bytes: &[u8]) -> Vec<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.rt.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let service = hyper_util::service::TowerToHyperService::new(self.router.clone());
            let conn = hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(hyper_util::rt::TokioIo::new(server), service);
            let (mut read, mut write) = tokio::io::split(client);
            let send = async move {
                let _ = write.write_all(bytes).await;
                let _ = write.shutdown().await;
            };
            let receive = async move {
                let mut answer = Vec::new();
                let _ = read.read_to_end(&mut answer).await;
                answer
            };
            let (_, _, _) = tokio::join!(conn, send, receive);
        });
        std::mem::take(&mut *self.statuses.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

/// Notes the status of every answer the router gives.
async fn record_status(
    axum::extract::State(statuses): axum::extract::State<Arc<Mutex<Vec<u16>>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(req).await;
    statuses.lock().unwrap_or_else(|e| e.into_inner()).push(response.status().as_u16());
    response
}

/// Raw bytes on a connection to `tusk serve` (one server per process): no answer may be a
/// 5xx other than 503 (overloaded, store busy), whatever was sent.
pub fn serve_http(bytes: &[u8]) {
    static SERVER: OnceLock<Server> = OnceLock::new();
    let statuses = SERVER.get_or_init(Server::new).exchange(bytes);
    if let Some(s) = statuses.iter().find(|s| (500..600).contains(*s) && **s != 503) {
        panic!("tusk serve answered {s} (all: {statuses:?})");
    }
}
