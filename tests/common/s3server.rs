//! A real S3-compatible server for tests: s3s-fs (installed by scripts/setup-s3s.sh), started
//! on a free loopback port with its own data folder, and helpers to fill buckets and run tusk.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

/// Access key the test server accepts.
pub const ACCESS_KEY: &str = "tusk-test-access";
/// Secret key the test server accepts.
pub const SECRET_KEY: &str = "tusk-test-secret-key-0123456789";

/// A running s3s-fs.
pub struct S3Server {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("TUSK_S3S_FS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tusk/s3s-fs-0.14.1/bin/s3s-fs")
    });
    assert!(
        path.is_file(),
        "s3s-fs not found at {}: run scripts/setup-s3s.sh (scripts/test.sh does it for you)",
        path.display()
    );
    path
}

impl S3Server {
    /// Starts a server on a free port with an empty data folder.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = S3Server {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        s.start_again();
        s
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (an outage); `start_again` brings it back.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data folder (a bucket is a sub-folder).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn client(&self, rt: &tokio::runtime::Runtime) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        let _guard = rt.enter();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a bucket and uploads `objects` (key, bytes) with PutObject, 32 at a time.
    pub fn put(&self, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let client = self.client(&rt);
        rt.block_on(async {
            let _ = client.create_bucket().bucket(bucket).send().await;
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
            let mut tasks = tokio::task::JoinSet::new();
            for (key, bytes) in objects {
                let (client, bucket) = (client.clone(), bucket.to_string());
                let permit = sem.clone().acquire_owned().await.unwrap();
                tasks.spawn(async move {
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&key)
                        .body(ByteStream::from(bytes))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
                    drop(permit);
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
        });
    }

    /// Every object under `prefix`, sorted by key, with its bytes.
    pub fn get_all(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = self.client(&rt);
        rt.block_on(async {
            let list = client.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
            let mut out = Vec::new();
            for o in list.contents() {
                let key = o.key().unwrap().to_string();
                let body = client.get_object().bucket(bucket).key(&key).send().await.unwrap().body;
                out.push((key, body.collect().await.unwrap().into_bytes().to_vec()));
            }
            out.sort();
            out
        })
    }

    /// Deletes one object.
    pub fn delete(&self, bucket: &str, key: &str) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = self.client(&rt);
        rt.block_on(async { client.delete_object().bucket(bucket).key(key).send().await.unwrap() });
    }

    /// A `tusk scan` command aimed at this server (credentials in the environment).
    pub fn tusk_scan(&self, source: &str, db: &Path, extra: &[&str]) -> Command {
        Self::tusk_scan_at(&self.endpoint(), source, db, extra)
    }

    /// A `tusk scan` command aimed at `endpoint` with the test credentials.
    pub fn tusk_scan_at(endpoint: &str, source: &str, db: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tusk"));
        cmd.args(["scan", source, "--db", db.to_str().unwrap(), "--progress", "off"]).args(extra);
        Self::aim(&mut cmd, endpoint);
        cmd
    }

    /// Points a tusk command at `endpoint` with the test credentials (and the test models).
    pub fn aim(cmd: &mut Command, endpoint: &str) {
        cmd.args(["--endpoint-url", endpoint, "--path-style"])
            .env("TUSK_MODELS", super::models_dir())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL");
    }

    /// Runs `tusk_scan` to the end and asserts success; returns stdout.
    pub fn scan_ok(&self, source: &str, db: &Path, extra: &[&str]) -> String {
        super::succeeded(self.tusk_scan(source, db, extra).output().unwrap(), &format!("tusk scan {source}"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Uploads `n` small real JPEGs to `bucket` as `PREFIX00000.jpg`, `PREFIX00001.jpg`, …
pub fn put_small_jpegs(server: &S3Server, bucket: &str, prefix: &str, n: usize) {
    let objects = small_real_jpegs(n).into_iter().enumerate().map(|(i, b)| (format!("{prefix}{i:05}.jpg"), b)).collect();
    server.put(bucket, objects);
}

/// `n` small, distinct, real JPEGs: crops of the demo photos at shifting offsets, 96 px.
pub fn small_real_jpegs(n: usize) -> Vec<Vec<u8>> {
    let photos: Vec<image::RgbImage> = std::fs::read_dir(super::demo_dir().join("images"))
        .unwrap()
        .map(|e| image::open(e.unwrap().path()).unwrap().to_rgb8())
        .collect();
    (0..n)
        .map(|i| {
            let p = &photos[i % photos.len()];
            let side = p.width().min(p.height()) * 3 / 4;
            let step = (i / photos.len()) as u32;
            let x = (step * 7) % (p.width() - side + 1);
            let y = (step * 3) % (p.height() - side + 1);
            let crop = image::imageops::crop_imm(p, x, y, side, side).to_image();
            let small = image::imageops::resize(&crop, 96, 96, image::imageops::FilterType::Triangle);
            let mut out = Vec::new();
            image::DynamicImage::ImageRgb8(small)
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
                .unwrap();
            out
        })
        .collect()
}
