//! `tusk enqueue` and `tusk worker`: flags in, the fleet library called, a summary out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tusk::decode::DecodeLimits;
use tusk::fleet::enqueue::enqueue;
use tusk::fleet::queue::{Queue, RetryPolicy};
use tusk::fleet::worker::{self, WorkerOptions};
use tusk::pipeline::{self, Processor, ScanOptions};
use tusk::source::fetch::Fetcher;
use tusk::source::s3::KindRules;
use tusk::source::SourceSpec;
use tusk::store::postgres::PgStore;
use tusk::store::Db;

use crate::{interrupted, parse_duration, runtime, sigterm, KindArg, ModelArgs, S3Args};

/// `tusk enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// `s3://BUCKET/PREFIX`, a folder or a JSONL manifest, as for `tusk scan`.
    source: String,
    /// The fleet's store: `postgres://user@host:port/db`.
    #[arg(long, env = "TUSK_DB")]
    db: Db,
    /// Kind of objects in a folder, and of manifest lines that do not say.
    #[arg(long, value_enum, default_value = "listing")]
    kind: KindArg,
    /// Kinds by S3 key prefix, e.g. `listings/=listing,xray/=xray`.
    #[arg(long, default_value = "")]
    kind_by_prefix: String,
    /// Keep listing: add jobs for new or changed objects after every --interval.
    #[arg(long)]
    follow: bool,
    /// Wait between --follow passes: 30s, 2m, 500ms, or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    s3: S3Args,
}

/// `tusk worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The fleet's store: `postgres://user@host:port/db`.
    #[arg(long, env = "TUSK_DB")]
    db: Db,
    #[command(flatten)]
    models: ModelArgs,
    /// Jobs claimed at a time.
    #[arg(long, default_value_t = 32)]
    batch: i64,
    /// Lease on claimed jobs; heartbeats renew it every third. A worker silent for longer loses
    /// its jobs to others and cannot commit them.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
    /// Wait between polls of an empty queue.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    poll: Duration,
    /// Exit 0 once no job is ready or leased.
    #[arg(long)]
    until_empty: bool,
    /// Name in the queue's lease_owner [default: HOSTNAME-PID].
    #[arg(long)]
    name: Option<String>,
    /// ONNX Runtime threads per session [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Attempts at reading an object (with backoff) before its failure record is final.
    #[arg(long, default_value_t = 5)]
    max_attempts: i32,
    /// Largest file read, in MiB.
    #[arg(long, default_value_t = DecodeLimits::default().max_file_bytes / (1024 * 1024))]
    max_file_mb: u64,
    #[command(flatten)]
    s3: S3Args,
}

/// The PostgreSQL store the fleet commands need; a one-line error (exit 2) for anything else.
async fn fleet_store(db: &Db) -> Result<PgStore, ExitCode> {
    let Db::Postgres(url) = db else {
        eprintln!("error: the fleet shares work through PostgreSQL: pass --db postgres://user@host:port/db (not {db})");
        return Err(ExitCode::from(2));
    };
    PgStore::open(url).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// Sets `stop` on SIGTERM or Ctrl-C; a second one exits at once. Called first thing, so a
/// SIGTERM during start-up (store, models) also ends in an orderly stop, not in death by signal.
fn stop_on_signals(stop: Arc<AtomicBool>) {
    // Registered now, not when the task first runs.
    let mut term = sigterm();
    tokio::spawn(async move {
        for round in 0..2 {
            interrupted(&mut term).await;
            if round == 1 {
                std::process::exit(130);
            }
            eprintln!("tusk: stopping — finishing the batch in flight (signal again to abort)");
            stop.store(true, Ordering::Relaxed);
        }
    });
}

/// Runs `tusk enqueue`.
pub fn run_enqueue(args: EnqueueArgs) -> ExitCode {
    let rules = match KindRules::parse(&args.kind_by_prefix) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --kind-by-prefix: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match SourceSpec::parse(&args.source, args.kind.into(), rules) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: source {}: {e}", args.source);
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone());
        let store = match fleet_store(&args.db).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let fetcher = Arc::new(Fetcher::new(args.s3.options()));
        if let Err(e) = fetcher.check(&source).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        let follow = args.follow.then_some(args.interval);
        match enqueue(&Queue::new(store), fetcher, &source, follow, stop).await {
            Ok(n) => {
                println!("tusk enqueue: {} listed, {} new jobs, {} rejected", n.listed, n.added, n.rejected);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: source {}: {e}", source.describe());
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs `tusk worker`.
pub fn run_worker(args: WorkerArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone());
        let store = match fleet_store(&args.db).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        // The models a scan with the same flags would run.
        let mut scan = ScanOptions::new(SourceSpec::Folder { root: ".".into(), kind: Default::default() }, args.db.clone(), PathBuf::new());
        if let Err(e) = args.models.apply(&mut scan) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let limits = DecodeLimits { max_file_bytes: args.max_file_mb.saturating_mul(1024 * 1024), ..DecodeLimits::default() };
        let processor = match pipeline::load_manifests(&scan) {
            Ok(m) => Processor::load(m, 1, args.threads.unwrap_or(cores), limits).await,
            Err(e) => Err(e),
        };
        let processor = match processor {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let name = args.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        });
        let s3 = args.s3.options();
        let opts = WorkerOptions {
            name,
            batch: args.batch.max(1),
            lease: args.lease.max(Duration::from_secs(1)),
            poll: args.poll,
            until_empty: args.until_empty,
            max_bytes: limits.max_file_bytes,
            fetch_concurrency: s3.concurrency,
            retry: RetryPolicy { max_attempts: args.max_attempts.max(1), ..RetryPolicy::default() },
        };
        let queue = Queue::new(store.clone());
        match worker::run(queue, Arc::new(store), processor, Arc::new(Fetcher::new(s3)), opts, stop).await {
            Ok(s) => {
                println!("tusk worker: {} stored, {} retried, {} fenced", s.stored, s.retried, s.fenced);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
