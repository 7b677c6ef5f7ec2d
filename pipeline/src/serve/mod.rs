//! `tusk serve`: the library behind HTTP for X-ray stations, crawlers and analysts. Models load
//! once ([`Processor`], one session set per core); every request runs the scan's own stage code
//! and writes the same store. Work in flight is bounded: a request takes its place before its
//! body is read, beyond `--max-in-flight` it gets `503` with `Retry-After` at once, and the I/O threads run below the CPU threads' priority
//! ([`lower_io_thread_priority`]), so refusing takes as little as it can from the cores
//! working on what was accepted. SIGTERM or Ctrl-C stops accepting and drains what is in
//! flight.

pub mod api;
pub mod auth;
pub mod decisions;
pub mod error;
pub mod metrics;
pub mod review;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use utoipa::OpenApi;

use crate::decode::DecodeLimits;
use crate::pipeline::{Processor, ScanError};
use crate::reuse::Catalog;
use crate::store::Store;

/// How the server runs; built by the CLI.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Requests worked on at once; more get 503.
    pub max_in_flight: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive (it holds a place in the work meanwhile).
    pub body_timeout: std::time::Duration,
    /// Decoder limits, as for `tusk scan`.
    pub limits: DecodeLimits,
    /// Posted pictures are kept here (by content hash) for overlays and the review pages.
    pub data_dir: PathBuf,
    /// Folders where stored objects' relative uris (scanned folders) are found, for the
    /// review pages' pictures.
    pub images: Vec<PathBuf>,
}

/// Everything a request may use.
pub struct App {
    store: Store,
    processor: Processor,
    tokens: auth::Tokens,
    metrics: metrics::Metrics,
    run_id: i64,
    model_ids: BTreeMap<String, i64>,
    catalog: tokio::sync::RwLock<Catalog>,
    work: Arc<tokio::sync::Semaphore>,
    uploads: PathBuf,
    opts: ServeOptions,
    clusters: review::clusters::ClusterCache,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Models, store or setup.
    #[error(transparent)]
    Setup(#[from] ScanError),
    /// The store failed at start.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The address or the data folder.
    #[error("{0}")]
    Io(String),
}

/// The OpenAPI document of `/v1`, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "tusk", description = "Recognise wildlife products in X-ray scans and listing photos; link re-posted photos across sellers."),
    paths(api::post_scan, api::post_listing, api::get_object, api::get_overlay, api::get_match, api::post_match, api::get_clusters, api::get_links, decisions::post_decision, decisions::get_decisions, api::openapi),
    components(schemas(decisions::DecisionInput)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

impl App {
    /// Starts a run in the store and loads the catalog and the tokens.
    pub async fn new(store: Store, processor: Processor, opts: ServeOptions) -> Result<Self, ServeError> {
        let (run_id, ids) = store.begin_run("tusk serve", processor.manifests()).await?;
        let model_ids = processor.manifests().iter().map(|m| m.name.clone()).zip(ids).collect();
        let catalog = Catalog::load(&store).await?;
        let tokens = auth::Tokens::load(store.clone(), Duration::from_secs(5)).await?;
        let uploads = opts.data_dir.join("uploads");
        std::fs::create_dir_all(&uploads).map_err(|e| ServeError::Io(format!("{}: {e}", uploads.display())))?;
        Ok(Self {
            store,
            processor,
            tokens,
            metrics: metrics::Metrics::default(),
            run_id,
            model_ids,
            catalog: tokio::sync::RwLock::new(catalog),
            work: Arc::new(tokio::sync::Semaphore::new(opts.max_in_flight.max(1))),
            uploads,
            opts,
            clusters: Default::default(),
        })
    }

    /// Where a stored object's picture is on this machine: a posted scan's upload, or a
    /// relative uri under one of `--images` (never outside it).
    pub fn picture_path(&self, uri: &str) -> Option<PathBuf> {
        crate::reviewed::find_picture(uri, Some(&self.uploads), &self.opts.images)
    }

    /// A stored object's picture bytes, when kept here.
    pub fn picture(&self, uri: &str) -> Option<Vec<u8>> {
        std::fs::read(self.picture_path(uri)?).ok()
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/scans", post(api::post_scan))
        .route("/v1/listings", post(api::post_listing))
        .route("/v1/objects/{id}", get(api::get_object))
        .route("/v1/objects/{id}/overlay.png", get(api::get_overlay))
        .route("/v1/match", get(api::get_match).post(api::post_match))
        .route("/v1/clusters", get(api::get_clusters))
        .route("/v1/sellers/{id}/links", get(api::get_links))
        .route("/v1/objects/{id}/decisions", post(decisions::post_decision))
        .route("/v1/decisions", get(decisions::get_decisions))
        .route("/v1/openapi.json", get(api::openapi))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(review::routes())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), review::session::cookie_reads))
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Ready when the models are loaded (they are, once the server listens) and the store answers.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.object_id("").await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({"ready": true, "models": app.processor.manifests().iter().map(|m| &m.name).collect::<Vec<_>>()}))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"ready": false, "store": e.to_string()}))).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

/// One structured log line and the metrics of every request (never its headers: no tokens).
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    app.metrics.request(&route, status, secs);
    tracing::info!(target: "tusk::serve::request", %method, route, status, ms = (secs * 1000.0).round(), "request");
    response
}

/// How much lower than the CPU threads the server's I/O threads run (a nice increment).
pub const IO_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`IO_NICE`]: run on the server's I/O
/// threads, so that under overload reading bodies and answering 503s yield the cores to the
/// CPU threads ([`crate::pipeline::cpu`]) working on what was accepted. Linux only; elsewhere,
/// or when refused, nothing changes.
pub fn lower_io_thread_priority() {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if *libc::__errno_location() == 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + IO_NICE).min(19));
        }
    }
}

/// Serves until `shutdown` resolves, then drains the requests in flight.
pub async fn run(app: Arc<App>, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await.map_err(|e| ServeError::Io(e.to_string()))
}
