//! The worker pool that joins the stages: source → plan (skip what is done) → read, decode,
//! hash and preprocess (blocking threads) → batched inference (one session set per worker) →
//! sink (one writer). Every channel is bounded, so memory does not grow with the source.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};
use image::RgbImage;

use crate::decode::{decode, DecodeLimits};
use crate::hash::PerceptualHasher;
use crate::infer::detect::{self, DecodeParams};
use crate::infer::manifest::Task;
use crate::infer::preprocess::Placement;
use crate::infer::{manifest, preprocess, Model, ModelError, ModelManifest};
use crate::overlay;
use crate::record::{Detection, Failure, Record, Stage};
use crate::reuse::features::{FeatureExtractor, ObjectFeatures};
use crate::sink::sqlite::{RunCounts, RunStatus};
use crate::sink::{JsonlSink, S3Parts, Store, StoreError};
use crate::source::s3::{self, S3Options};
use crate::source::{file_fingerprint, Entry, Item, Kind, Location, SourceSpec};

/// Everything a scan needs to know; built by the CLI, plain data.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Where objects come from.
    pub source: SourceSpec,
    /// SQLite database path.
    pub db: PathBuf,
    /// Optional JSONL output (appended to).
    pub jsonl: Option<PathBuf>,
    /// Folder holding `<name>/model.toml` model folders.
    pub models_dir: PathBuf,
    /// Only these models (by name); the default ones when empty.
    pub only_models: Vec<String>,
    /// Run no model at all: decode and hash only.
    pub hash_only: bool,
    /// Threads reading, decoding, hashing and preprocessing.
    pub decode_workers: usize,
    /// Inference workers, each with its own sessions.
    pub infer_workers: usize,
    /// ONNX Runtime intra-op threads per session.
    pub threads: usize,
    /// Largest inference batch.
    pub batch: usize,
    /// How long an inference worker waits to fill a batch.
    pub batch_wait: Duration,
    /// Capacity of each queue between stages.
    pub queue: usize,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Object-store access, for `s3://` sources and manifest lines.
    pub s3: S3Options,
    /// Keep listing after each pass, waiting this long between passes, until stopped.
    pub follow: Option<Duration>,
    /// Also write JSONL part files under this `s3://bucket/prefix/`.
    pub out: Option<s3::S3Url>,
    /// Records per part file.
    pub out_part_records: usize,
    /// Longest time a record waits before its part is written.
    pub out_part_age: Duration,
    /// Write a review image (boxes, labels, scores drawn on the scan) for every flagged object
    /// with boxes into this folder.
    pub overlay: Option<PathBuf>,
    /// Also keep detector boxes down to this score, below the labels' thresholds (stored with
    /// `flagged = 0`); `tusk eval` sets it to rank boxes for average precision.
    pub box_floor: Option<f32>,
}

impl ScanOptions {
    /// Defaults sized to this machine's cores.
    pub fn new(source: SourceSpec, db: PathBuf, models_dir: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            source,
            db,
            jsonl: None,
            models_dir,
            only_models: Vec::new(),
            hash_only: false,
            decode_workers: cores,
            infer_workers: cores,
            threads: 1,
            batch: 8,
            batch_wait: Duration::from_millis(5),
            queue: 64,
            limits: DecodeLimits::default(),
            s3: S3Options::default(),
            follow: None,
            out: None,
            out_part_records: 1000,
            out_part_age: Duration::from_secs(60),
            overlay: None,
            box_floor: None,
        }
    }
}

/// Hears about progress; the CLI draws a bar or logs, tests count.
pub trait Progress: Send + Sync {
    /// An object was already done and skipped.
    fn skipped(&self);
    /// A record was stored.
    fn stored(&self, record: &Record);
}

/// A progress listener that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn skipped(&self) {}
    fn stored(&self, _: &Record) {}
}

/// What a scan did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The run's id in the store.
    pub run_id: i64,
    /// Objects processed to a result in this run.
    pub processed: u64,
    /// Objects skipped as already done.
    pub skipped: u64,
    /// Failure records written.
    pub failed: u64,
    /// Objects with a detection at or above its label's threshold.
    pub flagged: u64,
    /// Objects with a detection, per label.
    pub by_label: BTreeMap<String, u64>,
    /// Failures per `stage/reason`.
    pub failures: BTreeMap<String, u64>,
    /// Wall time of the scan.
    pub elapsed: Duration,
    /// True when Ctrl-C stopped it early.
    pub interrupted: bool,
}

impl Summary {
    /// Processed objects per second of wall time.
    pub fn images_per_sec(&self) -> f64 {
        self.processed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Why a scan could not run or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A model could not be loaded (or ONNX Runtime is missing).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source could not be read or listed.
    #[error("source {path}: {message}")]
    Source {
        /// The source.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A part file could not be written to object storage.
    #[error("{0}")]
    Out(String),
    /// The JSONL file could not be written.
    #[error("JSONL output {path}: {source}")]
    Jsonl {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The object store cannot be used (credentials, bucket, endpoint).
    #[error(transparent)]
    S3Setup(#[from] s3::S3SetupError),
    /// No model matches `--model`.
    #[error("no model named {0:?} under the models folder")]
    UnknownModel(Vec<String>),
    /// A worker task died unexpectedly.
    #[error("worker failed: {0}")]
    Worker(String),
    /// The `--overlay` folder cannot be made.
    #[error("overlay folder {}: {source}", path.display())]
    Overlay {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An object that is not done yet; `bytes` is filled by the fetch stage for remote objects.
struct Job {
    item: Item,
    fingerprint: String,
    bytes: Option<Vec<u8>>,
}

/// Uris queued but not yet written: a `--follow` pass must not queue them a second time.
type InFlight = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// The object-store client, made on first use (a local scan never builds one).
struct Remote {
    opts: S3Options,
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
}

impl Remote {
    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client.get_or_init(|| s3::client(&self.opts)).await
    }
}

/// A decoded object with one input tensor (and where the image sits in it) per model that
/// applies to it; the decoded image itself only when review overlays are asked for.
struct Prepared {
    record: Record,
    tensors: Vec<(usize, Vec<f32>, Placement)>,
    image: Option<RgbImage>,
}

enum SinkMsg {
    Skipped,
    Record(Box<Record>),
}

/// Loads the model manifests a scan will use: those named by `--model`, else every default one.
pub fn load_manifests(opts: &ScanOptions) -> Result<Vec<ModelManifest>, ScanError> {
    if opts.hash_only {
        return Ok(Vec::new());
    }
    let all = manifest::discover(&opts.models_dir)?;
    if opts.only_models.is_empty() {
        return Ok(all.into_iter().filter(|m| m.default).collect());
    }
    let missing: Vec<String> = opts
        .only_models
        .iter()
        .filter(|n| !all.iter().any(|m| &m.name == *n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ScanError::UnknownModel(missing));
    }
    Ok(all.into_iter().filter(|m| opts.only_models.contains(&m.name)).collect())
}

/// Runs a scan to the end of the source, or until `stop` is set (then in-flight objects are
/// finished and written, queued ones are left for the next run).
pub async fn scan(opts: ScanOptions, stop: Arc<AtomicBool>, progress: Arc<dyn Progress>) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let manifests = load_manifests(&opts)?;
    if let Some(dir) = &opts.overlay {
        std::fs::create_dir_all(dir).map_err(|source| ScanError::Overlay { path: dir.clone(), source })?;
    }
    let infer_workers = opts.infer_workers.max(1);
    let threads = opts.threads.max(1);
    let to_load = manifests.clone();
    let mut worker_models: Vec<Vec<Model>> = tokio::task::spawn_blocking(move || {
        (0..infer_workers)
            .map(|_| to_load.iter().map(|m| Model::load(m, threads)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ScanError::Worker(e.to_string()))??;

    if let SourceSpec::S3 { url, .. } = &opts.source {
        s3::check(&opts.s3, url).await?;
    }
    if let Some(url) = &opts.out {
        s3::check(&opts.s3, url).await?;
    }
    let remote = Arc::new(Remote {
        opts: opts.s3.clone(),
        client: tokio::sync::OnceCell::new(),
    });
    let store = Store::open(&opts.db).await?;
    let (run_id, ids) = store.begin_run(&opts.source.describe(), &manifests).await?;
    let model_ids: BTreeMap<String, i64> = manifests.iter().map(|m| m.name.clone()).zip(ids.iter().copied()).collect();
    let mut by_kind: HashMap<Kind, Vec<usize>> = HashMap::new();
    for kind in [Kind::Listing, Kind::Xray] {
        by_kind.insert(kind, (0..manifests.len()).filter(|i| manifests[*i].kinds.contains(&kind)).collect());
    }
    let by_kind = Arc::new(by_kind);
    let manifests = Arc::new(manifests);

    let queue = opts.queue.max(1);
    let (entry_tx, entry_rx) = bounded::<Entry>(queue);
    let (plan_tx, plan_rx) = bounded::<Job>(queue);
    let (job_tx, job_rx) = bounded::<Job>(queue);
    let (prep_tx, prep_rx) = bounded::<Prepared>((opts.batch.max(1) * infer_workers * 2).max(2));
    let (out_tx, out_rx) = bounded::<SinkMsg>(queue);

    let in_flight: InFlight = Arc::default();
    let source_task = spawn_source(opts.source.clone(), entry_tx, remote.clone(), opts.follow, stop.clone());
    let planner = tokio::spawn(plan(
        entry_rx,
        plan_tx,
        out_tx.clone(),
        store.clone(),
        by_kind.clone(),
        ids.clone(),
        remote.clone(),
        in_flight.clone(),
        stop.clone(),
    ));
    let mut fetchers = Vec::new();
    for _ in 0..opts.s3.concurrency.max(1) {
        let (plan_rx, job_tx, out_tx) = (plan_rx.clone(), job_tx.clone(), out_tx.clone());
        let (remote, stop, max_bytes) = (remote.clone(), stop.clone(), opts.limits.max_file_bytes);
        fetchers.push(tokio::spawn(fetch(plan_rx, job_tx, out_tx, remote, max_bytes, stop)));
    }
    drop((plan_rx, job_tx));

    let mut decoders = Vec::new();
    for _ in 0..opts.decode_workers.max(1) {
        let (job_rx, prep_tx, out_tx) = (job_rx.clone(), prep_tx.clone(), out_tx.clone());
        let (manifests, by_kind, stop) = (manifests.clone(), by_kind.clone(), stop.clone());
        let settings = DecodeSettings { limits: opts.limits, keep_images: opts.overlay.is_some() };
        decoders.push(tokio::task::spawn_blocking(move || {
            decode_worker(job_rx, prep_tx, out_tx, &manifests, &by_kind, &settings, &stop)
        }));
    }
    drop((job_rx, prep_tx));

    let outputs = Arc::new(BoxOutputs { overlay: opts.overlay.clone(), floor: opts.box_floor });
    let mut inferers = Vec::new();
    for models in worker_models.drain(..) {
        let (prep_rx, out_tx, outputs) = (prep_rx.clone(), out_tx.clone(), outputs.clone());
        inferers.push(tokio::spawn(infer_worker(prep_rx, out_tx, models, outputs, opts.batch.max(1), opts.batch_wait)));
    }
    drop((prep_rx, out_tx));

    let jsonl = match &opts.jsonl {
        Some(p) => Some(JsonlSink::open(p).map_err(|source| ScanError::Jsonl {
            path: p.display().to_string(),
            source,
        })?),
        None => None,
    };
    let parts = match &opts.out {
        Some(url) => Some(S3Parts::new(remote.client().await.clone(), url.clone(), run_id)),
        None => None,
    };
    let outputs = Outputs {
        store: store.clone(),
        run_id,
        model_ids,
        jsonl: jsonl.map(|j| (j, opts.jsonl.as_ref().map(|p| p.display().to_string()).unwrap_or_default())),
        parts,
    };
    // Part files are written whole, so they set the pace; otherwise commit small and often.
    let policy = if opts.out.is_some() {
        FlushPolicy {
            max_records: opts.out_part_records.max(1),
            max_age: opts.out_part_age,
            when_idle: false,
        }
    } else {
        FlushPolicy {
            max_records: 256,
            max_age: Duration::from_millis(250),
            when_idle: true,
        }
    };
    let sink_result = sink(out_rx, outputs, policy, in_flight, progress).await;

    let join_err = |e: tokio::task::JoinError| ScanError::Worker(e.to_string());
    let source_result = source_task.await.map_err(join_err)?;
    planner.await.map_err(join_err)??;
    for f in fetchers {
        f.await.map_err(join_err)?;
    }
    for d in decoders {
        d.await.map_err(join_err)?;
    }
    for i in inferers {
        i.await.map_err(join_err)?;
    }
    let interrupted = stop.load(Ordering::Relaxed);
    let mut summary = match sink_result {
        Ok(s) => s,
        Err(e) => {
            let _ = store.finish_run(run_id, RunStatus::Failed, RunCounts::default()).await;
            return Err(e);
        }
    };
    summary.run_id = run_id;
    summary.interrupted = interrupted;
    summary.elapsed = started.elapsed();
    let counts = RunCounts {
        processed: summary.processed,
        skipped: summary.skipped,
        failed: summary.failed,
    };
    if let Err(message) = source_result {
        store.finish_run(run_id, RunStatus::Failed, counts).await?;
        return Err(ScanError::Source {
            path: opts.source.describe(),
            message,
        });
    }
    let status = if interrupted { RunStatus::Interrupted } else { RunStatus::Done };
    store.finish_run(run_id, status, counts).await?;
    Ok(summary)
}

/// Starts the source: a blocking walk for local sources, an async listing for S3.
/// With `follow`, every pass after the first waits `interval` (ending early on stop).
fn spawn_source(
    source: SourceSpec,
    entries: Sender<Entry>,
    remote: Arc<Remote>,
    follow: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        loop {
            match &source {
                SourceSpec::S3 { url, rules, default_kind } => {
                    let client = remote.client().await;
                    s3::list(client, url, rules, *default_kind, |e| {
                        let (entries, stop) = (entries.clone(), stop.clone());
                        async move { !stop.load(Ordering::Relaxed) && entries.send(e).await.is_ok() }
                    })
                    .await?;
                }
                local => {
                    let (local, entries, stop) = (local.clone(), entries.clone(), stop.clone());
                    tokio::task::spawn_blocking(move || {
                        local.walk(&mut |e| !stop.load(Ordering::Relaxed) && entries.send_blocking(e).is_ok())
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                }
            }
            let Some(interval) = follow else { return Ok(()) };
            let until = tokio::time::Instant::now() + interval;
            while tokio::time::Instant::now() < until {
                if stop.load(Ordering::Relaxed) || entries.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            tracing::info!("follow: listing {} again", source.describe());
        }
    })
}

/// Finds each item's fingerprint, skips the ones already done, and queues the rest.
#[allow(clippy::too_many_arguments)]
async fn plan(
    entries: Receiver<Entry>,
    jobs: Sender<Job>,
    out: Sender<SinkMsg>,
    store: Store,
    by_kind: Arc<HashMap<Kind, Vec<usize>>>,
    ids: Vec<i64>,
    remote: Arc<Remote>,
    in_flight: InFlight,
    stop: Arc<AtomicBool>,
) -> Result<(), ScanError> {
    while let Ok(entry) = entries.recv().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let item = match entry {
            Entry::Item(item) => item,
            Entry::Rejected(r) => {
                let failure = Failure {
                    stage: Stage::Source,
                    reason: r.reason.into(),
                    message: r.message,
                };
                let record = Record::failed(r.uri, None, Default::default(), failure);
                if out.send(SinkMsg::Record(Box::new(record))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let fingerprint = match fingerprint_of(&item, &remote).await {
            Ok(f) => f,
            Err(failure) => {
                let record = Record::failed(item.uri, None, item.meta, failure);
                if out.send(SinkMsg::Record(Box::new(record))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let needed: Vec<i64> = by_kind[&item.meta.kind].iter().map(|i| ids[*i]).collect();
        let queued = in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains(&item.uri);
        let sent = if queued {
            true
        } else if store.is_done(&item.uri, &fingerprint, &needed).await? {
            out.send(SinkMsg::Skipped).await.is_ok()
        } else {
            in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(item.uri.clone());
            jobs.send(Job { item, fingerprint, bytes: None }).await.is_ok()
        };
        if !sent {
            break;
        }
    }
    Ok(())
}

/// The item's fingerprint: from the source, or a stat of the file, or a HEAD of the object.
async fn fingerprint_of(item: &Item, remote: &Remote) -> Result<String, Failure> {
    if let Some(f) = &item.fingerprint {
        return Ok(f.clone());
    }
    match &item.location {
        Location::File(path) => match tokio::fs::metadata(path).await {
            Ok(m) if m.is_file() => Ok(file_fingerprint(&m)),
            Ok(_) => Err(Failure::read("not_a_file", format!("{} is not a regular file", path.display()))),
            Err(e) => Err(io_failure(&e, path)),
        },
        Location::S3 { bucket, key } => s3::head(remote.client().await, bucket, key).await,
    }
}

/// Downloads remote objects with bounded concurrency (one task each); local files pass through
/// to the decoders, which read them.
async fn fetch(
    jobs: Receiver<Job>,
    fetched: Sender<Job>,
    out: Sender<SinkMsg>,
    remote: Arc<Remote>,
    max_bytes: u64,
    stop: Arc<AtomicBool>,
) {
    while let Ok(mut job) = jobs.recv().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Location::S3 { bucket, key } = &job.item.location {
            let client = remote.client().await;
            match s3::get(client, bucket, key, max_bytes, remote.opts.attempts).await {
                Ok(bytes) => job.bytes = Some(bytes),
                Err(failure) => {
                    tracing::debug!(uri = %job.item.uri, reason = %failure.reason, "{}", failure.message);
                    let record = Record::failed(job.item.uri, Some(job.fingerprint), job.item.meta, failure);
                    if out.send(SinkMsg::Record(Box::new(record))).await.is_err() {
                        break;
                    }
                    continue;
                }
            }
        }
        if fetched.send(job).await.is_err() {
            break;
        }
    }
}

fn io_failure(e: &std::io::Error, path: &std::path::Path) -> Failure {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "not_found",
        std::io::ErrorKind::PermissionDenied => "permission_denied",
        _ => "io_error",
    };
    Failure::read(reason, format!("{}: {e}", path.display()))
}

/// Per-thread scratch state of a decode worker.
struct DecodeScratch {
    hasher: PerceptualHasher,
    buf: Vec<u8>,
    /// ORB for listing photos; made on first use (`None` inside when OpenCV failed to make it).
    features: Option<Option<FeatureExtractor>>,
}

impl DecodeScratch {
    fn new() -> Self {
        DecodeScratch { hasher: PerceptualHasher::new(), buf: Vec::new(), features: None }
    }

    /// Local features of a listing photo for verifying re-post matches; `None` (logged) when
    /// OpenCV fails, which leaves the object to the strict hash rule.
    fn features(&mut self, uri: &str, photo: &RgbImage) -> Option<Arc<ObjectFeatures>> {
        let extractor = self.features.get_or_insert_with(|| {
            FeatureExtractor::new().map_err(|e| tracing::warn!("no local features (re-post verification falls back to strict hashes): {e}")).ok()
        });
        match extractor.as_mut()?.extract(photo) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::warn!(uri, "local features failed: {e}");
                None
            }
        }
    }
}

/// What the decode workers need besides the models: decoder limits, and whether to keep the
/// decoded image for review overlays.
struct DecodeSettings {
    limits: DecodeLimits,
    keep_images: bool,
}

fn decode_worker(
    jobs: Receiver<Job>,
    prepared: Sender<Prepared>,
    out: Sender<SinkMsg>,
    manifests: &[ModelManifest],
    by_kind: &HashMap<Kind, Vec<usize>>,
    settings: &DecodeSettings,
    stop: &AtomicBool,
) {
    let mut scratch = DecodeScratch::new();
    while let Ok(job) = jobs.recv_blocking() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let uri = job.item.uri.clone();
        let (fingerprint, meta) = (job.fingerprint.clone(), job.item.meta.clone());
        let models = &by_kind[&job.item.meta.kind];
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            prepare(job, manifests, models, settings, &mut scratch)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "decoder panicked".into());
            scratch = DecodeScratch::new();
            Err(Box::new(Record::failed(
                uri.clone(),
                Some(fingerprint),
                meta,
                Failure {
                    stage: Stage::Decode,
                    reason: "decoder_panic".into(),
                    message,
                },
            )))
        });
        let sent = match outcome {
            Ok(p) if !p.tensors.is_empty() => prepared.send_blocking(p).is_ok(),
            Ok(p) => out.send_blocking(SinkMsg::Record(Box::new(p.record))).is_ok(),
            Err(record) => {
                if let Some(f) = &record.failure {
                    tracing::debug!(uri = %record.uri, stage = f.stage.as_str(), reason = %f.reason, "{}", f.message);
                }
                out.send_blocking(SinkMsg::Record(record)).is_ok()
            }
        };
        if !sent {
            break;
        }
    }
}

/// Reads, decodes, hashes and preprocesses one object.
fn prepare(
    job: Job,
    manifests: &[ModelManifest],
    models: &[usize],
    settings: &DecodeSettings,
    scratch: &mut DecodeScratch,
) -> Result<Prepared, Box<Record>> {
    let limits = &settings.limits;
    let Job { item, fingerprint, bytes } = job;
    let fail = |failure: Failure| Box::new(Record::failed(item.uri.clone(), Some(fingerprint.clone()), item.meta.clone(), failure));
    if let (None, Location::File(path)) = (&bytes, &item.location) {
        let read = (|| -> std::io::Result<Option<u64>> {
            let mut file = std::fs::File::open(path)?;
            let len = file.metadata()?.len();
            if len > limits.max_file_bytes {
                return Ok(Some(len));
            }
            scratch.buf.clear();
            file.read_to_end(&mut scratch.buf)?;
            Ok(None)
        })();
        match read {
            Err(e) => return Err(fail(io_failure(&e, path))),
            Ok(Some(len)) => {
                return Err(fail(Failure::read(
                    "file_too_large",
                    format!("{len} bytes is over --max-file-mb ({} bytes)", limits.max_file_bytes),
                )))
            }
            Ok(None) => {}
        }
    }
    let data: &[u8] = bytes.as_deref().unwrap_or(&scratch.buf);
    let decoded = decode(data, limits).map_err(|e| {
        fail(Failure {
            stage: Stage::Decode,
            reason: e.reason().into(),
            message: e.to_string(),
        })
    })?;
    // Keep the read buffer from pinning memory after one huge file.
    if scratch.buf.capacity() > 32 * 1024 * 1024 {
        scratch.buf = Vec::new();
    }
    let rgb = decoded.rgb;
    let kind = item.meta.kind;
    let uri = item.uri.clone();
    let tensors = models
        .iter()
        .map(|&i| {
            let (tensor, placement) = preprocess::prepare(&rgb, &manifests[i].input);
            (i, tensor, placement)
        })
        .collect();
    let mut record = Record::new(item.uri, Some(fingerprint), item.meta);
    record.width = Some(rgb.width());
    record.height = Some(rgb.height());
    if kind == Kind::Listing {
        let (hashes, views, photo) = scratch.hasher.hash_with_views(&rgb);
        record.hashes = Some(hashes);
        record.views = views;
        record.features = scratch.features(&uri, &photo);
    } else {
        record.hashes = Some(scratch.hasher.hash(&rgb));
    }
    let image = (settings.keep_images && models.iter().any(|&i| manifests[i].task == Task::Detect)).then_some(rgb);
    Ok(Prepared { record, tensors, image })
}

/// Collects small batches, runs them on this worker's own sessions, forwards records.
async fn infer_worker(
    prepared: Receiver<Prepared>,
    out: Sender<SinkMsg>,
    mut models: Vec<Model>,
    outputs: Arc<BoxOutputs>,
    batch: usize,
    wait: Duration,
) {
    while let Ok(first) = prepared.recv().await {
        let mut items = vec![first];
        let deadline = tokio::time::Instant::now() + wait;
        while items.len() < batch {
            match tokio::time::timeout_at(deadline, prepared.recv()).await {
                Ok(Ok(p)) => items.push(p),
                _ => break,
            }
        }
        let outputs = outputs.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let records = run_batch(&mut models, items, &outputs);
            (models, records)
        })
        .await;
        let records;
        (models, records) = match joined {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("inference worker died: {e}");
                return;
            }
        };
        for r in records {
            if out.send(SinkMsg::Record(Box::new(r))).await.is_err() {
                return;
            }
        }
    }
}

/// What the inference workers make of detector boxes beyond the records.
struct BoxOutputs {
    /// Folder for review images of flagged objects.
    overlay: Option<PathBuf>,
    /// Keep boxes down to this score (evaluation).
    floor: Option<f32>,
}

/// Runs every model over the items it applies to, in batches, and fills in the records; then
/// writes review images for flagged objects when asked.
fn run_batch(models: &mut [Model], items: Vec<Prepared>, outputs: &BoxOutputs) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::with_capacity(items.len());
    let mut tensors: Vec<Vec<(usize, Vec<f32>, Placement)>> = Vec::with_capacity(items.len());
    let mut images: Vec<Option<RgbImage>> = Vec::with_capacity(items.len());
    for p in items {
        records.push(p.record);
        tensors.push(p.tensors);
        images.push(p.image);
    }
    for (mi, model) in models.iter_mut().enumerate() {
        let users: Vec<usize> = (0..records.len())
            .filter(|&r| tensors[r].iter().any(|(m, _, _)| *m == mi))
            .collect();
        for chunk in users.chunks(model.max_batch.max(1)) {
            let mut data = Vec::with_capacity(chunk.len() * preprocess::tensor_len(&model.manifest.input));
            for &r in chunk {
                let t = &tensors[r].iter().find(|(m, _, _)| *m == mi).expect("filtered above").1;
                data.extend_from_slice(t);
            }
            let result = match model.manifest.task {
                Task::Classify => model.run(&data, chunk.len()).map(|probs| {
                    for (&r, p) in chunk.iter().zip(probs) {
                        classified(model, &mut records[r], &p);
                    }
                }),
                Task::Detect => model.run_detect(&data, chunk.len()).map(|(outs, anchors)| {
                    for (&r, out) in chunk.iter().zip(outs) {
                        let placement = tensors[r].iter().find(|(m, _, _)| *m == mi).expect("filtered above").2;
                        detected(model, &mut records[r], &out, anchors, &placement, outputs.floor);
                    }
                }),
            };
            if let Err(e) = result {
                tracing::warn!(model = %model.manifest.name, "inference failed: {e}");
                for &r in chunk {
                    records[r].failure = Some(Failure {
                        stage: Stage::Infer,
                        reason: "inference_error".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    for r in &mut records {
        if r.failure.is_some() {
            r.scores.clear();
            r.detections.clear();
        }
    }
    if let Some(dir) = &outputs.overlay {
        for (record, image) in records.iter().zip(images) {
            let Some(image) = image else { continue };
            if record.detections.iter().any(|d| d.flagged && d.bbox.is_some()) {
                if let Err(e) = overlay::write(dir, record, image) {
                    tracing::warn!(uri = %record.uri, "review image not written: {e}");
                }
            }
        }
    }
    records
}

/// Fills in a classifier's label scores and the labels at or above threshold.
fn classified(model: &Model, record: &mut Record, probabilities: &[f32]) {
    let scores = model.label_scores(probabilities);
    let name = model.manifest.name.clone();
    let mut by_label = BTreeMap::new();
    for (label, score) in model.manifest.labels.iter().zip(scores) {
        by_label.insert(label.name.clone(), score);
        if score >= label.threshold {
            record.detections.push(Detection {
                model: name.clone(),
                label: label.name.clone(),
                score,
                bbox: None,
                flagged: true,
            });
        }
    }
    record.scores.insert(name, by_label);
}

/// Fills in a detector's boxes (at or above each label's threshold, or down to `floor`) and,
/// per label, the best box score anywhere in the image as the image's score.
fn detected(model: &Model, record: &mut Record, out: &[f32], anchors: usize, placement: &Placement, floor: Option<f32>) {
    let m = &model.manifest;
    let floors: Vec<f32> = m.labels.iter().map(|l| floor.map_or(l.threshold, |f| f.min(l.threshold))).collect();
    let params = DecodeParams { floor: 0.0, iou: m.output.nms_iou, max_boxes: m.output.max_boxes };
    let size = (record.width.unwrap_or(0), record.height.unwrap_or(0));
    let hits = detect::decode(out, anchors, &m.labels, &floors, &params, placement, size);
    let best = detect::label_maxima(out, anchors, &m.labels);
    record.scores.insert(m.name.clone(), m.labels.iter().map(|l| l.name.clone()).zip(best).collect());
    for h in hits {
        let label = &m.labels[h.label];
        record.detections.push(Detection {
            model: m.name.clone(),
            label: label.name.clone(),
            score: h.score,
            bbox: Some(h.bbox),
            flagged: h.score >= label.threshold,
        });
    }
}

/// Everything the writer writes to.
struct Outputs {
    store: Store,
    run_id: i64,
    model_ids: BTreeMap<String, i64>,
    jsonl: Option<(JsonlSink, String)>,
    parts: Option<S3Parts>,
}

/// When the writer flushes what it holds.
struct FlushPolicy {
    max_records: usize,
    max_age: Duration,
    when_idle: bool,
}

impl Outputs {
    /// Streams first (part file, JSONL), then the store: a crash in between repeats lines in
    /// the streams but never loses a stored result from them.
    async fn write(&mut self, records: &[Record]) -> Result<(), ScanError> {
        if let Some(parts) = self.parts.as_mut() {
            parts.put(records).await.map_err(ScanError::Out)?;
        }
        if let Some((j, path)) = self.jsonl.as_mut() {
            j.write(records).map_err(|source| ScanError::Jsonl {
                path: path.clone(),
                source,
            })?;
        }
        self.store.write(self.run_id, records, &self.model_ids).await?;
        Ok(())
    }
}

/// The single writer: batches records into store transactions, JSONL lines and part files.
async fn sink(
    input: Receiver<SinkMsg>,
    mut outputs: Outputs,
    policy: FlushPolicy,
    in_flight: InFlight,
    progress: Arc<dyn Progress>,
) -> Result<Summary, ScanError> {
    let mut summary = Summary::default();
    let mut pending: Vec<Record> = Vec::new();
    let mut oldest = Instant::now();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(100), input.recv()).await;
        let closed = match next {
            Ok(Ok(SinkMsg::Skipped)) => {
                summary.skipped += 1;
                progress.skipped();
                false
            }
            Ok(Ok(SinkMsg::Record(r))) => {
                if pending.is_empty() {
                    oldest = Instant::now();
                }
                pending.push(*r);
                false
            }
            Ok(Err(_)) => true,
            Err(_) => false,
        };
        let due = closed
            || pending.len() >= policy.max_records
            || oldest.elapsed() >= policy.max_age
            || (policy.when_idle && next_is_idle(&input));
        if due && !pending.is_empty() {
            outputs.write(&pending).await?;
            let mut queued = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for r in pending.drain(..) {
                queued.remove(&r.uri);
                match &r.failure {
                    Some(f) => {
                        summary.failed += 1;
                        *summary.failures.entry(format!("{}/{}", f.stage.as_str(), f.reason)).or_default() += 1;
                    }
                    None => {
                        summary.processed += 1;
                        summary.flagged += u64::from(r.flagged());
                        let mut labels: Vec<&str> = r.detections.iter().filter(|d| d.flagged).map(|d| d.label.as_str()).collect();
                        labels.sort_unstable();
                        labels.dedup();
                        for l in labels {
                            *summary.by_label.entry(l.to_string()).or_default() += 1;
                        }
                    }
                }
                progress.stored(&r);
            }
        }
        if closed {
            return Ok(summary);
        }
    }
}

/// True when nothing is waiting, so a partial batch is worth writing now.
fn next_is_idle(input: &Receiver<SinkMsg>) -> bool {
    input.is_empty()
}
