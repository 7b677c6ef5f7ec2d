//! The `/v1` handlers. Each checks the caller's role, validates its query and body, and calls
//! the library: the Processor (the scan's decode → hash → infer), the store, the reuse catalog.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use super::auth::{Caller, Role};
use super::error::ApiError;
use super::App;
use crate::dicos::DxMeta;
use crate::record::Record;
use crate::reuse::{self, verify::Params, HashKind, Query, Rule};
use crate::source::{Item, Kind, Location, ObjectMeta};

/// Content types a picture may be posted as.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/tiff", "image/webp"];

/// The caller, if its bearer token is live and its role allows `needed`.
pub(crate) async fn caller(app: &App, headers: &HeaderMap, needed: Option<Role>) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "an `Authorization: Bearer TOKEN` header is required"));
    };
    let Some(caller) = app.tokens.check(token).await else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown or revoked token"));
    };
    match needed {
        Some(role) if !caller.role.allows(role) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {} token cannot do this (needs {})", caller.role.as_str(), role.as_str()),
        )),
        _ => Ok(caller),
    }
}

/// The query parameters, refusing any key not in `allowed`.
pub(crate) fn query(uri: &Uri, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let axum::extract::Query(q) = axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request("bad_query", format!("malformed query: {e}")))?;
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request("unknown_query_key", format!("unknown query key {k:?} (allowed: {})", allowed.join(", "))));
    }
    Ok(q)
}

/// Reads the whole body: up to the limit, it is kept (with `keep`); past it, the rest is read
/// and dropped (up to 16 × the limit), so the client finishes sending and hears the answer (a
/// 413 when over the limit; without `keep`, whatever the caller refuses with, on a connection
/// that stays usable).
/// A body that has not arrived within `--body-timeout-secs` is answered `408`, so a slow
/// upload cannot hold a place in the work for long.
async fn read_body(app: &App, body: Body, keep: bool) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let limit = app.opts.max_body_bytes;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request("body_unreadable", format!("the body broke off: {e}")))?;
            seen += chunk.len();
            if keep && seen <= limit {
                kept.extend_from_slice(&chunk);
            } else if seen > limit.saturating_mul(16) {
                break;
            }
        }
        Ok(())
    };
    let timeout = app.opts.body_timeout;
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", format!("the body did not arrive within --body-timeout-secs ({} s)", timeout.as_secs())))??;
    if seen > limit {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is over --max-body-mb ({limit} bytes)")));
    }
    Ok(kept)
}

/// Whether the client waits for `100 Continue` before sending its body: a request refused
/// before its body is read is then answered without the body ever being sent.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers.get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Answers `refused` for a request whose body is not wanted. The body is read and dropped
/// as it comes (no copy, no hash) so the client hears the answer on a connection that stays
/// usable, unless the client waits for `100 Continue`: then it never sends the body at all.
async fn refuse(app: &App, headers: &HeaderMap, body: Body, refused: ApiError) -> ApiError {
    if !expects_continue(headers) {
        let _ = read_body(app, body, false).await;
    }
    refused
}

/// The `503` for a request beyond `--max-in-flight`, counted as shed.
fn overloaded(app: &App) -> ApiError {
    app.metrics.shed();
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the server is at --max-in-flight; retry after a second")
}

/// A request's place in the work in flight (`--max-in-flight`), held until its answer is ready.
type Place = tokio::sync::OwnedSemaphorePermit;

/// What a request posted.
enum Posted {
    /// A picture (PNG, JPEG, TIFF, WebP) for the decoder.
    Picture(Vec<u8>),
    /// A DICOS (DICOM) DX object, read into a picture first ([`crate::dicos::read_dx`]).
    Dicos(Vec<u8>),
}

impl Posted {
    /// The bytes as posted.
    fn bytes(&self) -> &[u8] {
        match self {
            Posted::Picture(b) | Posted::Dicos(b) => b,
        }
    }

    /// The bytes as posted, owned (where DICOS was refused, a picture's).
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Posted::Picture(b) | Posted::Dicos(b) => b,
        }
    }
}

/// The caller (with the role `needed`), the posted picture and the caller's place in the work
/// in flight: a known content type, not empty, within the body limit; `application/dicom`
/// only where `dicos` allows it. The place is taken before the body is read, so a server that
/// is full refuses at once (`503`) and an accepted upload never races others for the last
/// place. The client always gets the answer (see [`refuse`]).
async fn authorised_picture(app: &App, headers: &HeaderMap, body: Body, needed: Role, dicos: bool) -> Result<(Caller, Posted, Place), ApiError> {
    let (who, place) = match caller(app, headers, Some(needed)).await {
        Ok(who) => match app.work.clone().try_acquire_owned() {
            Ok(place) => (who, place),
            Err(_) => return Err(refuse(app, headers, body, overloaded(app)).await),
        },
        Err(e) => return Err(refuse(app, headers, body, e).await),
    };
    let bytes = read_body(app, body, true).await?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_dicos = ct == crate::dicos::MEDIA_TYPE;
    if is_dicos && !dicos {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "dicos_unsupported", "DICOS is accepted by POST /v1/scans only: post a PNG, JPEG or TIFF here"));
    }
    if !is_dicos && !IMAGE_TYPES.contains(&ct.as_str()) {
        let mut types = IMAGE_TYPES.join(", ");
        if dicos {
            types.push_str(", application/dicom");
        }
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("Content-Type {ct:?} is not one of {types}")));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty_file", "the body is empty"));
    }
    Ok((who, if is_dicos { Posted::Dicos(bytes) } else { Posted::Picture(bytes) }, place))
}

/// Whether the client asked for a DICOS Threat Detection Report: `application/dicom` in
/// `Accept`, not refused (`q=0`) and not after `application/json`. JSON stays the default.
fn wants_dicos(headers: &HeaderMap) -> bool {
    for accept in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            match media.as_str() {
                "application/dicom" if !refused => return true,
                "application/json" if !refused => return false,
                _ => {}
            }
        }
    }
    false
}

/// HTTP status of a DICOS failure: 415 for objects tusk does not read, 422 (as for pictures)
/// otherwise.
fn dicos_status(e: &crate::dicos::DicosError) -> StatusCode {
    match e {
        crate::dicos::DicosError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Runs one picture through the models and stores it: its record (with the DX it came from,
/// for a DICOS post), or the failure as an error. A DICOS object is read into a picture first,
/// inside the same bounds on work in flight; one that cannot be read is stored as a failure
/// record too, with its reason. With `keep`, the picture the models saw is kept for its overlay.
/// The work runs in a task of its own: a client that hangs up does not cancel it halfway (its
/// picture is still stored, and the model sessions it holds go back to the pool).
/// `sha` is the posted bytes' SHA-256 (hex), the object version's fingerprint.
async fn process_and_store(app: &Arc<App>, place: Place, uri: String, mut meta: ObjectMeta, posted: Posted, sha: String, keep: bool) -> Result<(Record, i64, Option<DxMeta>), ApiError> {
    let app = app.clone();
    let task = tokio::spawn(async move {
        let _place = place;
        app.metrics.in_flight(1);
        let _gauge = scopeguard(|| app.metrics.in_flight(-1));
        let (bytes, dx) = match posted {
            Posted::Picture(bytes) => (bytes, None),
            Posted::Dicos(bytes) => {
                let limits = app.opts.limits;
                let read = app
                    .processor
                    .run_cpu(move || crate::dicos::read_dx(&bytes, &limits))
                    .await
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoder_panic", e.to_string()))?;
                match read {
                    Ok(scan) => {
                        meta.meta = with_dx_context(meta.meta.take(), &scan.meta);
                        (scan.png, Some(scan.meta))
                    }
                    Err(e) => {
                        let failure = crate::record::Failure { stage: crate::record::Stage::Decode, reason: e.reason().into(), message: e.to_string() };
                        let record = Record::failed(uri.clone(), Some(sha.clone()), meta, failure);
                        app.store.write(app.run_id, std::slice::from_ref(&record), &app.model_ids).await.map_err(ApiError::store)?;
                        return Err(ApiError::new(dicos_status(&e), e.reason(), e.to_string()));
                    }
                }
            }
        };
        if keep {
            keep_upload(&app, &sha, &bytes);
        }
        let item = Item { uri: uri.clone(), location: Location::File(uri.clone().into()), fingerprint: Some(sha.clone()), meta };
        let started = Instant::now();
        let record = app.processor.process(vec![(item, sha, bytes)]).await.remove(0);
        let names: Vec<&str> = app.processor.manifests().iter().filter(|m| m.kinds.contains(&record.meta.kind)).map(|m| m.name.as_str()).collect();
        app.metrics.inference(&names.join("+"), started.elapsed().as_secs_f64());
        app.store.write(app.run_id, std::slice::from_ref(&record), &app.model_ids).await.map_err(ApiError::store)?;
        if let Some(f) = &record.failure {
            return Err(ApiError::from_failure(&f.reason, &f.message));
        }
        let mut labels: Vec<&str> = record.detections.iter().filter(|d| d.flagged).map(|d| d.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        for l in labels {
            app.metrics.flagged(l);
        }
        let id = app.store.object_id(&uri).await.map_err(ApiError::store)?.ok_or_else(|| ApiError::store("the object just written is missing"))?;
        Ok((record, id, dx))
    });
    task.await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("processing failed: {e}")))?
}

/// The scan's context (`station`, `parcel`) with what the DX says filled in where the query
/// said nothing: its Station Name and its Patient ID (DICOS's Object of Inspection ID).
fn with_dx_context(context: Option<serde_json::Value>, dx: &DxMeta) -> Option<serde_json::Value> {
    let mut context = context.unwrap_or_else(|| serde_json::json!({}));
    for (key, value) in [("station", &dx.station_name), ("parcel", &dx.patient_id)] {
        if let (Some(v), None) = (value, context.get(key)) {
            context[key] = v.clone().into();
        }
    }
    (context.as_object().is_some_and(|o| !o.is_empty())).then_some(context)
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The record as JSON with its object id, the model versions that made it, and (scans) the
/// overlay's URL.
fn answer(app: &App, record: &Record, id: i64) -> serde_json::Value {
    let mut v = record.to_json();
    v["object_id"] = id.into();
    let models: BTreeMap<&str, &str> = app
        .processor
        .manifests()
        .iter()
        .filter(|m| m.kinds.contains(&record.meta.kind))
        .map(|m| (m.name.as_str(), m.version.as_str()))
        .collect();
    v["models"] = serde_json::json!(models);
    if record.meta.kind == Kind::Xray {
        v["overlay"] = format!("/v1/objects/{id}/overlay.png").into();
    }
    v
}

/// Keeps a posted picture's bytes (by content hash) for its overlay and the review pages.
fn keep_upload(app: &App, sha: &str, bytes: &[u8]) {
    let path = app.uploads.join(sha);
    if path.exists() {
        return;
    }
    let tmp = app.uploads.join(format!(".{sha}.{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path)) {
        tracing::warn!("keeping the upload for its overlay failed: {e}");
    }
}

/// Post one X-ray scan; get its verdict with boxes.
#[utoipa::path(post, path = "/v1/scans",
    params(("station" = Option<String>, Query, description = "the station that scanned (default for DICOS: its Station Name)"),
           ("parcel" = Option<String>, Query, description = "the parcel's id (default for DICOS: its Patient ID, the OOI ID)"),
           ("Accept" = Option<String>, Header, description = "application/json (default), or application/dicom for a DICOS Threat Detection Report")),
    request_body(description = "one scan: PNG, JPEG or TIFF, 8 or 16 bit; or a DICOS/DICOM DX object (uncompressed, first frame read)",
                 content(("image/png"), ("image/jpeg"), ("image/tiff"), ("application/dicom"))),
    responses((status = 200, description = "the record (JSONL shape) with object_id, models and overlay; or, with Accept: application/dicom, a DICOS Threat Detection Report",
               content(("application/json"), ("application/dicom"))),
              (status = 400, description = "bad query or empty body"),
              (status = 401, description = "no or unknown token"), (status = 403, description = "not a station or admin token"),
              (status = 413, description = "over --max-body-mb"), (status = 415, description = "not an image or DICOS content type, or a DICOS object tusk does not read (dicos_unsupported)"),
              (status = 422, description = "the picture cannot be decoded, or the DICOS object is malformed (dicos_malformed): the code is the failure reason"), (status = 503, description = "full: retry")),
    security(("bearer" = [])))]
pub async fn post_scan(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, body: Body) -> Result<Response, ApiError> {
    let (_, posted, place) = authorised_picture(&app, &headers, body, Role::Station, true).await?;
    let q = query(&uri, &["station", "parcel"])?;
    let sha = hex::encode(Sha256::digest(posted.bytes()));
    let parcel = q.get("parcel").cloned();
    let extra = (!q.is_empty()).then(|| serde_json::json!(q));
    let meta = ObjectMeta { kind: Kind::Xray, meta: extra, ..Default::default() };
    let (record, id, dx) = process_and_store(&app, place, format!("upload://scans/{sha}"), meta, posted, sha.clone(), true).await?;
    if !wants_dicos(&headers) {
        return Ok(Json(answer(&app, &record, id)).into_response());
    }
    let mut algorithm = vec!["tusk".to_string(), env!("CARGO_PKG_VERSION").to_string()];
    let mut seed = sha;
    for m in app.processor.manifests().iter().filter(|m| m.kinds.contains(&Kind::Xray)) {
        algorithm.push(format!("{} {}", m.name, m.version));
        seed.push_str(&format!(" {}={}", m.name, m.version));
    }
    let ctx = crate::dicos::ReportContext { source: dx.as_ref(), algorithm, seed, parcel, decided_at: std::time::SystemTime::now() };
    let report = crate::dicos::threat_detection_report(&record, &ctx).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "report_failed", e))?;
    Ok(([(header::CONTENT_TYPE, crate::dicos::MEDIA_TYPE)], report).into_response())
}

/// Post one listing photo; get its record and the other sellers' objects showing the same photo.
#[utoipa::path(post, path = "/v1/listings",
    params(("listing_id" = Option<String>, Query, description = "the listing"), ("seller_id" = Option<String>, Query, description = "the seller account"), ("platform" = Option<String>, Query, description = "the marketplace")),
    request_body(content_type = "image/jpeg", description = "one listing photo"),
    responses((status = 200, description = "the record with object_id, models and matches (verified, with evidence)"), (status = 401, description = "no or unknown token"),
              (status = 403, description = "not a crawler or admin token"), (status = 422, description = "the picture cannot be decoded"), (status = 503, description = "full: retry")),
    security(("bearer" = [])))]
pub async fn post_listing(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, body: Body) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, posted, place) = authorised_picture(&app, &headers, body, Role::Crawler, false).await?;
    let bytes = posted.into_bytes();
    let mut q = query(&uri, &["listing_id", "seller_id", "platform"])?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let meta = ObjectMeta { kind: Kind::Listing, listing_id: q.remove("listing_id"), seller_id: q.remove("seller_id"), platform: q.remove("platform"), meta: None };
    let part = |v: &Option<String>| v.as_deref().map(|s| s.replace('/', "%2F")).unwrap_or_else(|| "-".into());
    let object_uri = format!("upload://listings/{}/{}/{}/{sha}", part(&meta.platform), part(&meta.seller_id), part(&meta.listing_id));
    let seller = meta.seller_id.clone();
    let (record, id, _) = process_and_store(&app, place, object_uri.clone(), meta, Posted::Picture(bytes), sha, true).await?;
    // The object joins the catalog now, so the next query sees it.
    let mut catalog = app.catalog.write().await;
    catalog.refresh(&app.store).await.map_err(ApiError::store)?;
    let catalog = catalog.downgrade();
    let mut matches = Vec::new();
    if let Some(pos) = catalog.by_uri(&object_uri) {
        let mut q = Query::from_entry(&catalog.entries[pos]);
        q.features = reuse::entry_features(&catalog, &app.store, pos).await.map_err(ApiError::store)?;
        let found = reuse::matches(&catalog, &app.store, &q, &Rule::new(HashKind::Default, None), &Params::default()).await.map_err(ApiError::store)?;
        for m in found.iter().filter(|m| m.matched && m.entry != pos) {
            let other = catalog.entries[m.entry].seller_id.as_deref();
            if other.is_some() && other != seller.as_deref() {
                matches.push(reuse::match_json(&catalog, &object_uri, m));
            }
        }
    }
    let mut v = answer(&app, &record, id);
    v["matches"] = matches.into();
    Ok(Json(v))
}

/// One stored object.
#[utoipa::path(get, path = "/v1/objects/{id}", params(("id" = i64, Path, description = "object id")),
    responses((status = 200, description = "the record"), (status = 404, description = "no such object")), security(("bearer" = [])))]
pub async fn get_object(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    query(&uri, &[])?;
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request("bad_id", format!("{id:?} is not an object id")))?;
    let record = app.store.record(id).await.map_err(ApiError::store)?.ok_or_else(|| ApiError::not_found(format!("no object {id}")))?;
    Ok(Json(answer(&app, &record, id)))
}

/// A posted scan with its boxes drawn (PNG).
#[utoipa::path(get, path = "/v1/objects/{id}/overlay.png", params(("id" = i64, Path, description = "object id")),
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 404, description = "no such posted scan")), security(("bearer" = [])))]
pub async fn get_overlay(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request("bad_id", format!("{id:?} is not an object id")))?;
    let record = app.store.record(id).await.map_err(ApiError::store)?.ok_or_else(|| ApiError::not_found(format!("no object {id}")))?;
    let sha = record.uri.strip_prefix("upload://scans/").ok_or_else(|| ApiError::not_found(format!("object {id} is not a posted scan")))?;
    let bytes = std::fs::read(app.uploads.join(sha)).map_err(|_| ApiError::not_found(format!("the scan of object {id} is no longer kept")))?;
    let limits = app.opts.limits;
    let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let decoded = crate::decode::decode(&bytes, &limits).map_err(|e| e.to_string())?;
        let drawn = crate::overlay::render(&record, decoded.rgb);
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(drawn).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "overlay_failed", e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "overlay_failed", e))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// The verified matches of a query, as `tusk match --json` reports them.
async fn matches_of(app: &App, name: &str, q: &Query) -> Result<Json<serde_json::Value>, ApiError> {
    let mut catalog = app.catalog.write().await;
    catalog.refresh(&app.store).await.map_err(ApiError::store)?;
    let catalog = catalog.downgrade();
    let found = reuse::matches(&catalog, &app.store, q, &Rule::new(HashKind::Default, None), &Params::default()).await.map_err(ApiError::store)?;
    let rows: Vec<serde_json::Value> = found.iter().filter(|m| m.matched).map(|m| reuse::match_json(&catalog, name, m)).collect();
    Ok(Json(serde_json::json!({"matches": rows})))
}

/// Stored objects showing the photo with this hash (64 hex digits: PDQ; 16: pHash).
#[utoipa::path(get, path = "/v1/match", params(("hash" = String, Query, description = "PDQ (64 hex digits) or pHash (16)")),
    responses((status = 200, description = "{\"matches\": [...]}, each with its evidence"), (status = 400, description = "bad hash")), security(("bearer" = [])))]
pub async fn get_match(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    let q = query(&uri, &["hash"])?;
    let hex = q.get("hash").ok_or_else(|| ApiError::bad_request("missing_hash", "pass ?hash=HEX"))?;
    let query = Query::from_hex(hex, HashKind::Default).map_err(|e| ApiError::bad_request("bad_hash", e))?;
    matches_of(&app, hex, &query).await
}

/// Stored objects showing the posted photo (nothing is stored).
#[utoipa::path(post, path = "/v1/match", request_body(content_type = "image/jpeg", description = "a photo"),
    responses((status = 200, description = "{\"matches\": [...]}"), (status = 422, description = "the picture cannot be decoded")), security(("bearer" = [])))]
pub async fn post_match(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, body: Body) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, posted, place) = authorised_picture(&app, &headers, body, Role::Analyst, false).await?;
    let bytes = posted.into_bytes();
    query(&uri, &[])?;
    let limits = app.opts.limits;
    let q = app
        .processor
        .run_cpu(move || crate::decode::decode(&bytes, &limits).map(|d| reuse::query_from_image(&d.rgb)))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoder_panic", e.to_string()))?
        .map_err(|e| ApiError::from_failure(e.reason(), &e.to_string()))?;
    drop(place);
    matches_of(&app, "posted photo", &q).await
}

/// Photos posted by two or more sellers, largest group first.
#[utoipa::path(get, path = "/v1/clusters", responses((status = 200, description = "{\"clusters\": [...]}")), security(("bearer" = [])))]
pub async fn get_clusters(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    query(&uri, &[])?;
    let clusters = verified_clusters(&app).await?;
    let catalog = app.catalog.read().await;
    let v: Vec<serde_json::Value> = clusters.iter().map(|c| reuse::cluster_json(&catalog, c)).collect();
    Ok(Json(serde_json::json!({"clusters": v})))
}

async fn verified_clusters(app: &App) -> Result<Vec<reuse::Cluster>, ApiError> {
    let mut catalog = app.catalog.write().await;
    catalog.refresh(&app.store).await.map_err(ApiError::store)?;
    let catalog = catalog.downgrade();
    reuse::clusters(&catalog, &app.store, &Rule::new(HashKind::Default, None), 2).await.map_err(ApiError::store)
}

/// The sellers who posted the same photos as this one, with example pairs.
#[utoipa::path(get, path = "/v1/sellers/{id}/links", params(("id" = String, Path, description = "seller id")),
    responses((status = 200, description = "{\"links\": [...]}, heaviest first")), security(("bearer" = [])))]
pub async fn get_links(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(seller): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    query(&uri, &[])?;
    let clusters = verified_clusters(&app).await?;
    let catalog = app.catalog.read().await;
    let links: Vec<_> = reuse::links(&catalog, &clusters).into_iter().filter(|l| l.source == seller || l.target == seller).collect();
    Ok(Json(serde_json::json!({"seller": seller, "links": links})))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "the OpenAPI document")), security(("bearer" = [])))]
pub async fn openapi(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, None).await?;
    Ok(Json(super::openapi_document()))
}
