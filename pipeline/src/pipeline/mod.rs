//! The scan: bounded stages joined by channels, each in a module of its own, data flowing one
//! way: [`list`] the source → [`plan`] (skip what the store says is done) → [`fetch`] the
//! bytes → [`prepare`] (decode, hash, preprocess; blocking threads) → [`batch`]ed inference
//! (one session set per worker) → [`write`] (one writer: store, JSONL, part files). Every
//! channel is bounded, so memory does not grow with the source.

mod batch;
pub mod cpu;
mod fetch;
mod list;
mod plan;
mod prepare;
mod process;
mod write;

pub use process::Processor;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::bounded;
use image::RgbImage;

use crate::decode::DecodeLimits;
use crate::infer::preprocess::Placement;
use crate::infer::{manifest, Model, ModelError, ModelManifest};
use crate::record::Record;
use crate::sink::{JsonlSink, S3Parts};
use crate::source::fetch::Fetcher;
use crate::source::s3::{self, S3Options};
use crate::source::{Entry, Item, Kind, SourceSpec};
use crate::store::{Db, RunCounts, RunStatus, Store, StoreError};

/// Everything a scan needs to know; built by the CLI, plain data.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Where objects come from.
    pub source: SourceSpec,
    /// The store: a SQLite file or a PostgreSQL url.
    pub db: Db,
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
    pub fn new(source: SourceSpec, db: Db, models_dir: PathBuf) -> Self {
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

/// An object that is not done yet, with the fingerprint of the version to process.
struct Job {
    item: Item,
    fingerprint: String,
}

/// A job with its bytes.
struct Fetched {
    item: Item,
    fingerprint: String,
    bytes: Vec<u8>,
}

/// Uris queued but not yet written: a `--follow` pass must not queue them a second time.
type InFlight = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

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

    let fetcher = Arc::new(Fetcher::new(opts.s3.clone()));
    fetcher.check(&opts.source).await?;
    if let Some(url) = &opts.out {
        s3::check(&opts.s3, url).await?;
    }
    let store = Store::open(&opts.db).await?;
    let (run_id, ids) = store.begin_run(&opts.source.describe(), &manifests).await?;
    let model_ids: BTreeMap<String, i64> = manifests.iter().map(|m| m.name.clone()).zip(ids.iter().copied()).collect();
    let mut by_kind: HashMap<Kind, Vec<usize>> = HashMap::new();
    for kind in [Kind::Listing, Kind::Xray] {
        by_kind.insert(kind, (0..manifests.len()).filter(|i| manifests[*i].kinds.contains(&kind)).collect());
    }
    let needed = by_kind.iter().map(|(k, models)| (*k, models.iter().map(|i| ids[*i]).collect())).collect();
    let by_kind = Arc::new(by_kind);
    let manifests = Arc::new(manifests);

    let queue = opts.queue.max(1);
    let (entry_tx, entry_rx) = bounded::<Entry>(queue);
    let (plan_tx, plan_rx) = bounded::<Job>(queue);
    let (job_tx, job_rx) = bounded::<Fetched>(queue);
    let (prep_tx, prep_rx) = bounded::<Prepared>((opts.batch.max(1) * infer_workers * 2).max(2));
    let (out_tx, out_rx) = bounded::<SinkMsg>(queue);

    let in_flight: InFlight = Arc::default();
    let source_task = list::spawn(opts.source.clone(), entry_tx, fetcher.clone(), opts.follow, stop.clone());
    let planner = plan::Planner {
        store: store.clone(),
        needed,
        fetcher: fetcher.clone(),
        in_flight: in_flight.clone(),
        stop: stop.clone(),
    };
    let planner = tokio::spawn(planner.run(entry_rx, plan_tx, out_tx.clone()));
    let mut fetchers = Vec::new();
    for _ in 0..opts.s3.concurrency.max(1) {
        let (plan_rx, job_tx, out_tx) = (plan_rx.clone(), job_tx.clone(), out_tx.clone());
        let (fetcher, stop, max_bytes) = (fetcher.clone(), stop.clone(), opts.limits.max_file_bytes);
        fetchers.push(tokio::spawn(fetch::run(plan_rx, job_tx, out_tx, fetcher, max_bytes, stop)));
    }
    drop((plan_rx, job_tx));

    let mut decoders = Vec::new();
    for _ in 0..opts.decode_workers.max(1) {
        let (job_rx, prep_tx, out_tx) = (job_rx.clone(), prep_tx.clone(), out_tx.clone());
        let (manifests, by_kind, stop) = (manifests.clone(), by_kind.clone(), stop.clone());
        let settings = prepare::DecodeSettings { limits: opts.limits, keep_images: opts.overlay.is_some() };
        decoders.push(tokio::task::spawn_blocking(move || {
            prepare::decode_worker(job_rx, prep_tx, out_tx, &manifests, &by_kind, &settings, &stop)
        }));
    }
    drop((job_rx, prep_tx));

    let outputs = Arc::new(batch::BoxOutputs { overlay: opts.overlay.clone(), floor: opts.box_floor });
    let mut inferers = Vec::new();
    for models in worker_models.drain(..) {
        let (prep_rx, out_tx, outputs) = (prep_rx.clone(), out_tx.clone(), outputs.clone());
        inferers.push(tokio::spawn(batch::infer_worker(prep_rx, out_tx, models, outputs, opts.batch.max(1), opts.batch_wait)));
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
        Some(url) => Some(S3Parts::new(fetcher.s3_client().await.clone(), url.clone(), run_id)),
        None => None,
    };
    let outputs = write::Outputs {
        store: store.clone(),
        run_id,
        model_ids,
        jsonl: jsonl.map(|j| (j, opts.jsonl.as_ref().map(|p| p.display().to_string()).unwrap_or_default())),
        parts,
    };
    // Part files are written whole, so they set the pace; otherwise commit small and often.
    let policy = if opts.out.is_some() {
        write::FlushPolicy {
            max_records: opts.out_part_records.max(1),
            max_age: opts.out_part_age,
            when_idle: false,
        }
    } else {
        write::FlushPolicy {
            max_records: 256,
            max_age: Duration::from_millis(250),
            when_idle: true,
        }
    };
    let sink_result = write::sink(out_rx, outputs, policy, in_flight, progress).await;

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

