//! Helpers shared by the end-to-end tests: paths, running the real `tusk` binary, and
//! reading its SQLite store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::SqlitePool;

pub mod pgserver;
pub mod webdriver;
pub mod s3server;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The committed models folder.
pub fn models_dir() -> PathBuf {
    root().join("models")
}

/// The demo data folder.
pub fn demo_dir() -> PathBuf {
    root().join("datasets/demo")
}

/// The Python reference's scores for `models/NAME` on the parity images, computed now, on this
/// machine, by `scripts/parity_reference.py` (Pillow + numpy + Python onnxruntime in `.venv`, or
/// the interpreter named by `$TUSK_PYTHON`). Computed here rather than committed because ONNX
/// Runtime's int8 kernels score differently on CPUs with and without AVX-512 VNNI.
pub fn python_reference(model: &str) -> serde_json::Value {
    let python = std::env::var_os("TUSK_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "the parity reference needs Python with onnxruntime, Pillow and numpy: {} is missing (run scripts/setup-python.sh; scripts/test.sh does)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("parity_{model}.json"));
    let run = Command::new(&python)
        .arg(root().join("scripts/parity_reference.py"))
        .arg(models_dir().join(model))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run scripts/parity_reference.py");
    succeeded(run, "scripts/parity_reference.py");
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// `tusk` with `args`, finding the committed models (for commands the test starts itself).
pub fn tusk_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tusk"));
    c.args(args).env("TUSK_MODELS", models_dir());
    c
}

/// Makes an API token on the store `db` and returns it.
pub fn create_token(db: &str, role: &str, name: &str) -> String {
    succeeded(tusk_cmd(&["token", "create", "--role", role, "--name", name, "--db", db]).output().unwrap(), "token create").trim().to_string()
}

/// Starts `tusk serve --db DB ARGS…` on a free loopback port, its log in `dir/serve.log`, and
/// waits until `/healthz` answers; returns the process and the port.
pub fn spawn_serve(dir: &Path, db: &str, args: &[&str]) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let child = tusk_cmd(&["serve", "--listen", &format!("127.0.0.1:{port}"), "--db", db]).args(args).stdout(std::process::Stdio::null()).stderr(log).spawn().unwrap();
    let started = std::time::Instant::now();
    while ureq::get(&format!("http://127.0.0.1:{port}/healthz")).call().is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "tusk serve did not start: {}", std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (child, port)
}

/// Runs `tusk` with `args` from the repository root and returns its output.
pub fn tusk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tusk"))
        .args(args)
        .current_dir(root())
        .env("TUSK_MODELS", models_dir())
        .output()
        .expect("run tusk")
}

/// Runs `tusk scan SOURCE --db DB [extra…]`, asserting it exits 0; returns stdout.
pub fn scan_ok(source: &Path, db: &Path, extra: &[&str]) -> String {
    let mut args = vec!["scan", source.to_str().unwrap(), "--db", db.to_str().unwrap(), "--progress", "off"];
    args.extend_from_slice(extra);
    succeeded(tusk(&args), &format!("tusk {args:?}"))
}

/// Runs `tusk eval SOURCE --kind xray --labels LABELS --boxes BOXES --json [--model MODEL]`, asserting it exits
/// 0; returns the parsed report.
pub fn eval_boxes(source: &Path, labels: &Path, boxes: &Path, model: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "eval",
        source.to_str().unwrap(),
        "--kind",
        "xray",
        "--labels",
        labels.to_str().unwrap(),
        "--boxes",
        boxes.to_str().unwrap(),
        "--json",
    ];
    if let Some(model) = model {
        args.extend(["--model", model]);
    }
    let out = succeeded(tusk(&args), &format!("tusk {args:?}"));
    serde_json::from_str(&out).expect("eval prints JSON")
}

/// Asserts that a finished `tusk` run exited 0, showing its output otherwise; returns stdout.
pub fn succeeded(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Opens a SQLite store (migrated) for assertions.
pub async fn pool(db: &Path) -> SqlitePool {
    tusk::store::sqlite::SqliteStore::open(db).await.expect("open store").pool().clone()
}

/// Runs a single SQL scalar query returning an integer.
pub fn count(db: &Path, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = pool(db).await;
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&p).await.unwrap()
    })
}

/// Runs a SQL query returning one integer column.
pub fn query_ids(db: &Path, sql: &str) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = pool(db).await;
        sqlx::query_scalar::<_, i64>(sql).fetch_all(&p).await.unwrap()
    })
}

/// Runs a SQL query returning rows of two text columns.
pub fn pairs(db: &Path, sql: &str) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = pool(db).await;
        sqlx::query_as::<_, (String, String)>(sql).fetch_all(&p).await.unwrap()
    })
}

/// Reads a JSONL file into JSON values.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// CRC-32 (PNG chunks).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid PNG whose IHDR (with a correct CRC) claims `w × h` pixels.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // Signature (8) + length (4) + "IHDR" (4): width and height follow.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

