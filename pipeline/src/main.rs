//! The `tusk` command line: parses flags, calls the library, prints a summary. Nothing else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fleet_cli;
mod reuse_cli;
mod reviewed_cli;
mod serve_cli;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tusk::decode::DecodeLimits;
use tusk::eval;
use tusk::infer::{manifest, Model, ModelError};
use tusk::pipeline::{self, Progress, ScanError, ScanOptions};
use tusk::record::Record;
use tusk::source::s3::{KindRules, S3Options, S3Url};
use tusk::source::{Kind, SourceSpec};
use tusk::store::Db;

/// tusk finds wildlife products (ivory, pangolin scales, live reptiles) in listing photos and
/// parcel X-ray scans, hashes every picture, and stores the results.
#[derive(Debug, Parser)]
#[command(name = "tusk", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recognise, hash and store every image of a folder or JSONL manifest.
    Scan(Box<ScanArgs>),
    /// List the models under the models folder and check that each one loads.
    Models(ModelsArgs),
    /// Find the stored objects that show a photo: by image file, hash, object uri or seller.
    Match(Box<reuse_cli::MatchArgs>),
    /// Groups of objects that show the same photo under two or more sellers, largest first.
    Clusters(reuse_cli::ClustersArgs),
    /// Write the seller–seller graph (edges weighted by shared photos, with example pairs) as
    /// CSV, GraphML or JSON for Gephi and similar tools.
    Links(reuse_cli::LinksArgs),
    /// Measure the models on labelled images (a CSV with `file,label` columns) through the real
    /// pipeline: per label precision, recall, AP, false-positive rate and confusion counts.
    Eval(EvalArgs),
    /// Add one job per new or changed object of a folder, manifest or S3 prefix to the fleet's
    /// PostgreSQL queue (idempotent; --follow keeps listing).
    Enqueue(Box<fleet_cli::EnqueueArgs>),
    /// Claim jobs from the fleet's PostgreSQL queue and process them until stopped (SIGTERM
    /// finishes the batch in flight) or, with --until-empty, until none is left.
    Worker(Box<fleet_cli::WorkerArgs>),
    /// Serve the HTTP API for X-ray stations, crawlers and analysts (see /v1/openapi.json).
    Serve(Box<serve_cli::ServeArgs>),
    /// Make, list or revoke the API tokens of `tusk serve`.
    Token(serve_cli::TokenArgs),
    /// Write reviewed objects as labelled training data (`tusk export reviewed`).
    Export(reviewed_cli::ExportArgs),
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Folder the CSV's `file` paths are relative to.
    #[arg(required_unless_present = "reviewed")]
    source: Option<PathBuf>,
    /// CSV with a header naming `file` and `label` columns (other columns are ignored).
    #[arg(long, required_unless_present = "reviewed")]
    labels: Option<PathBuf>,
    /// Instead of labelled images: each model's precision on the flags reviewers confirmed or
    /// rejected in the store `--db` (per version and label, with the reasons for rejections).
    #[arg(long, requires = "db", conflicts_with_all = ["source", "labels", "boxes", "map"])]
    reviewed: bool,
    /// Dataset label → tusk labels: `ivory_composite=ivory`, `reptile=live_reptile`,
    /// `ivory_painting=~ivory` (left out of ivory's metrics), `x=` (negative for all). Repeatable
    /// or comma-separated. Without a rule a dataset label counts as positive for the tusk label of
    /// the same name and negative for the others.
    #[arg(long = "map")]
    map: Vec<String>,
    /// True boxes for detectors: a CSV with `file,label,x0,y0,x1,y1` (pixels). Adds AP at IoU
    /// 0.5 and the detection rate per label; an image is then positive for a label when it holds
    /// one of its boxes.
    #[arg(long)]
    boxes: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Store to scan into (SQLite file or postgres:// url); reuse it to re-measure without
    /// re-scanning [default: a temporary SQLite file, removed afterwards].
    #[arg(long)]
    db: Option<Db>,
    /// Folder holding one sub-folder per model, each with a model.toml [default: found as for
    /// `tusk scan --models`].
    #[arg(long, env = "TUSK_MODELS")]
    models: Option<PathBuf>,
    /// Measure only these models (by name, repeatable); default: the default models for the kind.
    #[arg(long = "model")]
    only_models: Vec<String>,
    /// Kind of the images.
    #[arg(long, value_enum, default_value = "listing")]
    kind: KindArg,
    /// ONNX Runtime threads per session [default: 1].
    #[arg(long)]
    threads: Option<usize>,
    /// Largest inference batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Listing,
    Xray,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Listing => Kind::Listing,
            KindArg::Xray => Kind::Xray,
        }
    }
}

/// The async runtime both `scan` and `eval` run on; a failure to start it is one line, exit 1.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    runtime_with(|b| b)
}

/// [`runtime`], with its builder adjusted first (e.g. `tusk serve`'s per-thread start hook).
fn runtime_with(adjust: impl FnOnce(&mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    adjust(tokio::runtime::Builder::new_multi_thread().enable_all()).build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Plain log lines every few seconds.
    Log,
    /// Nothing until the summary.
    Off,
}

#[derive(Debug, Args)]
struct ModelsArgs {
    /// Folder holding one sub-folder per model, each with a model.toml [default: found as for
    /// `tusk scan --models`].
    #[arg(long, env = "TUSK_MODELS")]
    models: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// `s3://BUCKET/PREFIX`, a folder (walked recursively for jpg, png, webp, tiff, gif, bmp) or
    /// a JSONL manifest (one {"uri": …, "kind": …, "listing_id": …, "seller_id": …, "platform": …,
    /// "meta": …} per line; uris are paths or s3:// objects).
    source: String,
    /// Store for results: a SQLite file (created if missing) or a `postgres://user@host:port/db`
    /// url (the database must exist; tables are created).
    #[arg(long, default_value = "tusk.db")]
    db: Db,
    /// Also append one JSON line per processed object to this file.
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Write a review image per flagged scan into this folder: the scan with each box drawn,
    /// labelled with its label and score (detectors, e.g. for `--kind xray`).
    #[arg(long)]
    overlay: Option<PathBuf>,
    #[command(flatten)]
    models: ModelArgs,
    /// Kind of objects in a folder, and of manifest lines that do not say.
    #[arg(long, value_enum, default_value = "listing")]
    kind: KindArg,
    /// Threads that read, decode, hash and preprocess images [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Inference workers, each with its own ONNX Runtime sessions [default: number of cores].
    #[arg(long)]
    infer_workers: Option<usize>,
    /// ONNX Runtime threads per session [default: 1; whole batches in parallel sessions beat
    /// one session's intra-op threads, see scripts/bench/compare.sh].
    #[arg(long)]
    threads: Option<usize>,
    /// Largest inference batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Milliseconds an inference worker waits to fill a batch.
    #[arg(long, default_value_t = 5)]
    batch_wait_ms: u64,
    /// Capacity of each queue between stages.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Largest image width accepted, in pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_width)]
    max_width: u32,
    /// Largest image height accepted, in pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_height)]
    max_height: u32,
    /// Largest width × height accepted.
    #[arg(long, default_value_t = DecodeLimits::default().max_pixels)]
    max_pixels: u64,
    /// Largest allocation the decoder may make, in MiB.
    #[arg(long, default_value_t = DecodeLimits::default().max_alloc / (1024 * 1024))]
    max_alloc_mb: u64,
    /// Largest file read, in MiB.
    #[arg(long, default_value_t = DecodeLimits::default().max_file_bytes / (1024 * 1024))]
    max_file_mb: u64,
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,
    /// Kinds by S3 key prefix, e.g. `listings/=listing,xray/=xray` (longest prefix wins).
    #[arg(long, default_value = "")]
    kind_by_prefix: String,
    #[command(flatten)]
    s3: S3Args,
    /// After a pass, keep listing the source and process new or changed objects until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Wait between --follow passes: 30s, 2m, 500ms, or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    /// Also write the JSONL records to object storage as part files under s3://BUCKET/PREFIX/
    /// (each part written whole; names sort by time).
    #[arg(long)]
    out: Option<String>,
    /// Records per --out part file.
    #[arg(long, default_value_t = 1000)]
    out_part_records: usize,
    /// Longest a record waits for its --out part, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    out_part_age: Duration,
}

/// Which models run; shared by `scan` and `worker`.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Folder holding one sub-folder per model, each with a model.toml [default: the first of
    /// ./models, models beside the executable, the checkout of a cargo-built executable,
    /// /opt/tusk/models, /usr/local/share/tusk/models].
    #[arg(long, env = "TUSK_MODELS")]
    models: Option<PathBuf>,
    /// Run only these models (by name, repeatable); default: every model marked `default` for the
    /// object's kind.
    #[arg(long = "model")]
    only_models: Vec<String>,
    /// Only decode and hash: run no model (for analysts who only link re-posted photos).
    #[arg(long, conflicts_with = "only_models")]
    hash_only: bool,
}

impl ModelArgs {
    /// Sets the scan's models; an error (one line) when no models folder is found.
    fn apply(&self, opts: &mut ScanOptions) -> Result<(), String> {
        opts.only_models = self.only_models.clone();
        opts.hash_only = self.hash_only;
        if !self.hash_only {
            opts.models_dir = find_models(self.models.as_deref())?;
        }
        Ok(())
    }
}

/// The models folder: the one given (which must exist), else the first that exists of
/// ./models, `models` beside the executable, the checkout holding a cargo-built executable
/// (target/{release,debug}/tusk → ../../models), /opt/tusk/models, /usr/local/share/tusk/models.
fn find_models(given: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return if dir.is_dir() {
            Ok(dir.to_path_buf())
        } else {
            Err(format!("models folder {} not found (from --models or TUSK_MODELS)", dir.display()))
        };
    }
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.to_path_buf()));
    let mut tried = vec![PathBuf::from("models")];
    if let Some(d) = &exe_dir {
        tried.push(d.join("models"));
        tried.push(d.join("../../models"));
    }
    tried.push(PathBuf::from("/opt/tusk/models"));
    tried.push(PathBuf::from("/usr/local/share/tusk/models"));
    tried.iter().find(|d| d.is_dir()).cloned().ok_or_else(|| {
        let list: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
        format!("no models folder: pass --models DIR or set TUSK_MODELS (looked in {})", list.join(", "))
    })
}

/// How to reach the object store; shared by every command that reads objects.
#[derive(Debug, Args)]
struct S3Args {
    /// S3 endpoint URL (MinIO, Ceph, Garage, …); AWS_ENDPOINT_URL works too.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// S3 region [default: from the AWS configuration, else us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// Path-style S3 addressing (http://host/bucket/key), which self-hosted servers need.
    #[arg(long)]
    path_style: bool,
    /// S3 downloads in flight at once.
    #[arg(long, default_value_t = 16)]
    s3_concurrency: usize,
    /// Seconds allowed for one S3 request attempt.
    #[arg(long, default_value_t = 30)]
    s3_timeout_secs: u64,
    /// Attempts per S3 request (backoff with jitter between them) before a failure record.
    #[arg(long, default_value_t = 5)]
    s3_attempts: u32,
}

impl S3Args {
    fn options(&self) -> S3Options {
        S3Options {
            endpoint: self.endpoint_url.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            timeout: Duration::from_secs(self.s3_timeout_secs.max(1)),
            attempts: self.s3_attempts.max(1),
            concurrency: self.s3_concurrency.max(1),
        }
    }
}

/// The SIGTERM listener of a long-running command, made once so no signal between two waits
/// is missed (`None` where it cannot be installed: then only Ctrl-C stops).
fn sigterm() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
}

/// Waits for Ctrl-C or SIGTERM (deploys, `systemctl stop`, Kubernetes).
async fn interrupted(term: &mut Option<tokio::signal::unix::Signal>) {
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

/// Parses `30s`, `2m`, `500ms`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TUSK_LOG").unwrap_or_else(|_| "tusk=info,warn".into()),
        )
        .init();
    match cli.command {
        Command::Scan(args) => scan(*args),
        Command::Models(args) => models(args),
        Command::Eval(args) => eval(args),
        Command::Match(args) => reuse_cli::run_match(*args),
        Command::Clusters(args) => reuse_cli::run_clusters(args),
        Command::Links(args) => reuse_cli::run_links(args),
        Command::Enqueue(args) => fleet_cli::run_enqueue(*args),
        Command::Worker(args) => fleet_cli::run_worker(*args),
        Command::Serve(args) => serve_cli::run_serve(*args),
        Command::Token(args) => serve_cli::run_token(args),
        Command::Export(args) => reviewed_cli::run_export(args),
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    if args.reviewed {
        return reviewed_cli::run_report(args.db.clone().unwrap_or_else(|| Db::Sqlite("tusk.db".into())), args.json);
    }
    let (Some(source), Some(labels)) = (args.source.clone(), args.labels.clone()) else {
        eprintln!("error: tusk eval needs SOURCE and --labels (or --reviewed)");
        return ExitCode::from(2);
    };
    let map = match eval::LabelMap::parse(&args.map) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let kind = Kind::from(args.kind);
    let temp = std::env::temp_dir().join(format!("tusk-eval-{}", std::process::id()));
    let db = match &args.db {
        Some(db) => db.clone(),
        None => {
            if let Err(e) = std::fs::create_dir_all(&temp) {
                eprintln!("error: {}: {e}", temp.display());
                return ExitCode::FAILURE;
            }
            Db::Sqlite(temp.join("eval.db"))
        }
    };
    let source_dir = source;
    let source = SourceSpec::Folder { root: source_dir.clone(), kind };
    let models = match find_models(args.models.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            if args.db.is_none() {
                let _ = std::fs::remove_dir_all(&temp);
            }
            return ExitCode::from(2);
        }
    };
    let mut opts = ScanOptions::new(source, db, models);
    opts.only_models = args.only_models.clone();
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    opts.batch = args.batch.max(1);
    let result = match runtime() {
        Ok(rt) => rt.block_on(eval::evaluate(&labels, args.boxes.as_deref(), &source_dir, kind, &map, opts, Arc::new(CliProgress::new(ProgressArg::Log)))),
        Err(code) => return code,
    };
    if args.db.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    match result {
        Ok(report) if args.json => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(eval::EvalError::Scan(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Setup problems (missing runtime, bad manifest) exit 2; failures during a run exit 1.
fn exit_code(e: &ScanError) -> u8 {
    match e {
        ScanError::Model(_) | ScanError::UnknownModel(_) | ScanError::S3Setup(_) | ScanError::Overlay { .. } => 2,
        _ => 1,
    }
}

fn models(args: ModelsArgs) -> ExitCode {
    let dir = match find_models(args.models.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let manifests = match manifest::discover(&dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    for m in &manifests {
        let labels: Vec<String> = m.labels.iter().map(|l| format!("{}≥{}", l.name, l.threshold)).collect();
        let kinds: Vec<&str> = m.kinds.iter().map(|k| k.as_str()).collect();
        let status = match Model::load(m, 1) {
            Ok(_) => "ok".to_string(),
            Err(e @ ModelError::Runtime { .. }) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                ok = false;
                format!("ERROR: {e}")
            }
        };
        let runs = if m.default { "default" } else { "--model only" };
        println!("{} {} [{}] kinds={} ({runs}) labels={} — {status}", m.name, m.version, m.sha256.get(..12).unwrap_or(""), kinds.join(","), labels.join(","));
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

fn scan(args: ScanArgs) -> ExitCode {
    let kind = Kind::from(args.kind);
    let rules = match KindRules::parse(&args.kind_by_prefix) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --kind-by-prefix: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match SourceSpec::parse(&args.source, kind, rules) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: source {}: {e}", args.source);
            return ExitCode::from(2);
        }
    };
    let mut opts = ScanOptions::new(source, args.db.clone(), PathBuf::new());
    if let Err(e) = args.models.apply(&mut opts) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    opts.jsonl = args.jsonl.clone();
    opts.overlay = args.overlay.clone();
    if let Some(w) = args.workers {
        opts.decode_workers = w.max(1);
    }
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    if let Some(w) = args.infer_workers {
        opts.infer_workers = w.max(1);
    }
    opts.batch = args.batch.max(1);
    opts.batch_wait = Duration::from_millis(args.batch_wait_ms);
    opts.queue = args.queue.max(1);
    opts.limits = DecodeLimits {
        max_width: args.max_width,
        max_height: args.max_height,
        max_pixels: args.max_pixels,
        max_alloc: args.max_alloc_mb.saturating_mul(1024 * 1024),
        max_file_bytes: args.max_file_mb.saturating_mul(1024 * 1024),
    };
    opts.s3 = args.s3.options();
    opts.follow = args.follow.then_some(args.interval);
    if let Some(out) = &args.out {
        match S3Url::parse(out) {
            Some(mut url) => {
                if !url.prefix.is_empty() && !url.prefix.ends_with('/') {
                    url.prefix.push('/');
                }
                opts.out = Some(url);
            }
            None => {
                eprintln!("error: --out must be s3://BUCKET/PREFIX/, not `{out}`");
                return ExitCode::from(2);
            }
        }
    }
    opts.out_part_records = args.out_part_records.max(1);
    opts.out_part_age = args.out_part_age;
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let progress: Arc<CliProgress> = Arc::new(CliProgress::new(args.progress));
    let result = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ntusk: stopping — finishing the objects in flight (Ctrl-C again to abort)");
                flag.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        pipeline::scan(opts, stop, progress.clone()).await
    });
    progress.finish();
    match result {
        Ok(s) => {
            println!(
                "tusk scan: {} processed, {} skipped (already done), {} failed in {:.2} s ({:.1} images/s)",
                s.processed,
                s.skipped,
                s.failed,
                s.elapsed.as_secs_f64(),
                s.images_per_sec()
            );
            println!("  flagged: {}", s.flagged);
            if s.by_label.is_empty() {
                println!("  detections: none");
            }
            for (label, n) in &s.by_label {
                println!("  detections: {label} {n}");
            }
            for (reason, n) in &s.failures {
                println!("  failures: {reason} {n}");
            }
            print!("  store: {} (run {})", args.db, s.run_id);
            if let Some(j) = &args.jsonl {
                print!(", jsonl: {}", j.display());
            }
            if let Some(o) = &args.out {
                print!(", out: {o}");
            }
            if let Some(o) = &args.overlay {
                print!(", review images: {}", o.display());
            }
            println!();
            if s.interrupted {
                println!("  interrupted: rerun the same command to finish");
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A progress bar on a terminal, or a log line every five seconds.
struct CliProgress {
    bar: Option<indicatif::ProgressBar>,
    log: bool,
    done: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    started: Instant,
    last_log: std::sync::Mutex<Instant>,
}

impl CliProgress {
    fn new(mode: ProgressArg) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = matches!(mode, ProgressArg::Bar) || (matches!(mode, ProgressArg::Auto) && tty);
        let bar = bar.then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {pos} images ({per_sec}) {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            log: matches!(mode, ProgressArg::Log) || (matches!(mode, ProgressArg::Auto) && !tty),
            bar,
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started: Instant::now(),
            last_log: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn tick(&self) {
        let (done, skipped, failed) = (
            self.done.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(format!("{skipped} skipped, {failed} failed"));
        } else if self.log {
            let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                tracing::info!("{done} processed, {skipped} skipped, {failed} failed ({rate:.1} images/s)");
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.tick();
    }

    fn stored(&self, record: &Record) {
        if record.failure.is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        self.tick();
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(super::parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(super::parse_duration("5 parsecs").is_err());
    }
}
