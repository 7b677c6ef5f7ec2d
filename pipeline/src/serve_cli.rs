//! `tusk serve` and `tusk token`: flags in, the serve library called.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use tusk::decode::DecodeLimits;
use tusk::pipeline::{self, Processor, ScanOptions};
use tusk::serve::{self, auth, App, ServeOptions};
use tusk::source::SourceSpec;
use tusk::store::{Db, Store};

use crate::{interrupted, runtime, runtime_with, sigterm, ModelArgs};

/// `tusk serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless you put a TLS proxy in front.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store: a SQLite file or a postgres:// url (shared with scans and the fleet).
    #[arg(long, env = "TUSK_DB", default_value = "tusk.db")]
    db: Db,
    #[command(flatten)]
    models: ModelArgs,
    /// Requests worked on at once [default: number of cores]; more get 503 with Retry-After.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mb: usize,
    /// Longest a request body may take to arrive, in seconds (then 408); an accepted upload
    /// holds a place in --max-in-flight while it arrives.
    #[arg(long, default_value_t = 60)]
    body_timeout_secs: u64,
    /// Folder for posted scans (kept by content hash for their overlays) [default: beside a
    /// SQLite store, else ./tusk-serve-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder where scanned objects' relative uris are found (the folder a manifest or
    /// `tusk scan DIR` read), so the review page can show their pictures; repeatable.
    #[arg(long)]
    images: Vec<PathBuf>,
}

/// `tusk token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    /// The store the server uses.
    #[arg(long, env = "TUSK_DB", default_value = "tusk.db", global = true)]
    db: Db,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token; it is printed once on stdout and only its hash is stored.
    Create {
        /// station (scans), crawler (listings), analyst (reads, matches) or admin (all).
        #[arg(long)]
        role: String,
        /// Who holds it (unique).
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, whether revoked; never the tokens).
    List,
    /// Revoke a token by name (takes effect within 5 seconds).
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `tusk serve`.
pub fn run_serve(args: ServeArgs) -> ExitCode {
    let mut scan = ScanOptions::new(SourceSpec::Folder { root: ".".into(), kind: Default::default() }, args.db.clone(), PathBuf::new());
    if let Err(e) = args.models.apply(&mut scan) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let data = args.data.clone().unwrap_or_else(|| match &args.db {
        Db::Sqlite(p) => p.with_extension("serve"),
        Db::Postgres(_) => PathBuf::from("tusk-serve-data"),
    });
    let opts = ServeOptions {
        listen: args.listen,
        max_in_flight: args.max_in_flight.unwrap_or(cores).max(1),
        max_body_bytes: args.max_body_mb.max(1) * 1024 * 1024,
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs.max(1)),
        limits: DecodeLimits::default(),
        data_dir: data,
        images: args.images.clone(),
    };
    // The runtime's own threads (I/O, blocking pool) run below the CPU threads the processor
    // starts from this thread.
    let rt = match runtime_with(|b| b.on_thread_start(serve::lower_io_thread_priority)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let setup = async {
            let manifests = pipeline::load_manifests(&scan)?;
            // One session set per core, one intra-op thread each: requests run side by side.
            // Loaded here, on this (main) thread: its CPU threads keep the normal priority.
            let processor = Processor::load(manifests, cores, 1, opts.limits).await?;
            let store = Store::open(&args.db).await?;
            let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(|e| serve::ServeError::Io(format!("listen on {}: {e}", opts.listen)))?;
            let app = App::new(store, processor, opts.clone()).await?;
            Ok::<_, serve::ServeError>((app, listener))
        };
        let (app, listener) = match setup.await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!("tusk serve: listening on http://{addr} (store {})", args.db);
        println!("tusk serve: listening on http://{addr}");
        let mut term = sigterm();
        let shutdown = async move {
            interrupted(&mut term).await;
            tracing::info!("tusk serve: stopping — answering the requests in flight");
        };
        match serve::run(Arc::new(app), listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs `tusk token`.
pub fn run_token(args: TokenArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let store = match Store::open(&args.db).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = match &args.command {
            TokenCommand::Create { role, name } => {
                let role: auth::Role = match role.parse() {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: --role: {e}");
                        return ExitCode::from(2);
                    }
                };
                let token = match auth::new_token() {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: no randomness: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                match store.add_token(name, role.as_str(), &hex::encode(auth::token_hash(&token))).await {
                    Ok(true) => {
                        println!("{token}");
                        eprintln!("token {name:?} ({}) made: it is shown only this once", role.as_str());
                        Ok(())
                    }
                    Ok(false) => {
                        eprintln!("error: a token named {name:?} exists (revoke it, or pick another name)");
                        return ExitCode::from(2);
                    }
                    Err(e) => Err(e),
                }
            }
            TokenCommand::List => store.tokens().await.map(|tokens| {
                for t in tokens {
                    println!("{}\t{}\t{}\t{}", t.name, t.role, t.created_at, if t.revoked { "revoked" } else { "live" });
                }
            }),
            TokenCommand::Revoke { name } => match store.revoke_token(name).await {
                Ok(true) => {
                    println!("revoked {name:?}");
                    Ok(())
                }
                Ok(false) => {
                    eprintln!("error: no live token named {name:?}");
                    return ExitCode::from(2);
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
