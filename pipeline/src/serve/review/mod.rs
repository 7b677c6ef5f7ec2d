//! The review workspace at `/`: analysts sign in with their token, work through the queue of
//! flagged objects, look at the evidence (boxes, scores, the same photo posted by other
//! sellers), confirm or reject with a reason, undo, and follow seller networks. Pages are
//! rendered on the server ([`html`]); forms work without scripts, a small script adds keyboard
//! shortcuts. Every decision goes through [`crate::serve::decisions::decide`], as the API's do.

pub mod clusters;
pub mod html;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::auth::{Caller, Role};
use super::decisions::{decide, DecisionInput};
use super::error::ApiError;
use super::App;
use crate::reuse::{self, verify::Params, HashKind, Query, Rule};
use crate::source::Kind;
use crate::store::{DecisionFilter, QueueFilter, QueueOrder};

/// Queue rows per page.
const PAGE: i64 = 50;

/// The page routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(queue))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/objects/{id}", get(object_page))
        .route("/objects/{id}/image", get(image))
        .route("/objects/{id}/decide", post(decide_form))
        .route("/decisions/undo", post(undo_form))
        .route("/sellers/{id}", get(seller_page))
        .route("/network", get(network_page))
        .route("/network.csv", get(|s, h| export(s, h, reuse::export::Format::Csv)))
        .route("/network.graphml", get(|s, h| export(s, h, reuse::export::Format::GraphMl)))
}

/// A signed-in reviewer: who, and the CSRF value for their forms.
pub struct Reviewer {
    /// The token's holder.
    pub caller: Caller,
    /// Goes into every form.
    pub csrf: String,
}

/// The signed-in analyst, or the answer to send instead: to sign-in without a live session,
/// 403 for a token of another role.
async fn reviewer(app: &App, headers: &HeaderMap, here: &Uri) -> Result<Reviewer, Response> {
    let next = here.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let to_signin = || Redirect::to(&format!("/signin?next={}", encode(next))).into_response();
    let Some(token) = session::token(headers) else { return Err(to_signin()) };
    let Some(caller) = app.tokens.check(&token).await else { return Err(to_signin()) };
    if !caller.role.allows(Role::Analyst) {
        let body = html::forbidden(&caller, &session::csrf(&token));
        return Err((StatusCode::FORBIDDEN, body).into_response());
    }
    Ok(Reviewer { caller, csrf: session::csrf(&token) })
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local path to go back to (never another site).
fn local(back: Option<&String>) -> String {
    match back {
        // Visible ASCII only: a form's `back` with a line break or other control character
        // is no valid Location header (axum answered 500; found by fuzzing).
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') && b.bytes().all(|c| c.is_ascii_graphic()) => b.clone(),
        _ => "/".into(),
    }
}

/// The query of `uri` as a map (repeated keys: the last).
fn params(uri: &Uri) -> BTreeMap<String, String> {
    axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

async fn signin_page(uri: Uri) -> Response {
    let p = params(&uri);
    html::signin(p.contains_key("failed"), &local(p.get("next"))).into_response()
}

async fn signin(State(app): State<Arc<App>>, Form(form): Form<BTreeMap<String, String>>) -> Response {
    let token = form.get("token").map(|t| t.trim().to_string()).unwrap_or_default();
    let next = local(form.get("next"));
    match app.tokens.check(&token).await {
        Some(caller) => {
            tracing::info!(target: "tusk::serve::review", who = caller.name, "signed in");
            ([(header::SET_COOKIE, session::sign_in_cookie(&token))], Redirect::to(&next)).into_response()
        }
        None => Redirect::to(&format!("/signin?failed=1&next={}", encode(&next))).into_response(),
    }
}

async fn signout(headers: HeaderMap, Form(form): Form<BTreeMap<String, String>>) -> Response {
    if let Some(token) = session::token(&headers) {
        if !session::form_ok(&headers, &token, form.get("csrf").map(String::as_str)) {
            return ApiError::new(StatusCode::FORBIDDEN, "bad_form", "the form is not from this page (CSRF check failed)").into_response();
        }
    }
    ([(header::SET_COOKIE, session::sign_out_cookie())], Redirect::to("/signin")).into_response()
}

/// The queue's filters as the page's query gives them.
fn queue_filter(p: &BTreeMap<String, String>) -> (QueueFilter, i64) {
    let get = |k: &str| p.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let page = get("page").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0).max(0);
    let filter = QueueFilter {
        label: get("label"),
        kind: get("kind"),
        platform: get("platform"),
        seller: get("seller"),
        model_version: get("model_version"),
        decided: match get("decided").as_deref() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        },
        order: if get("order").as_deref() == Some("uncertain") { QueueOrder::Uncertain } else { QueueOrder::Newest },
        limit: PAGE,
        offset: page * PAGE,
    };
    (filter, page)
}

/// This page's address without the one-shot `undo` parameter.
fn here_without_undo(uri: &Uri) -> String {
    let kept: Vec<String> = params(uri).into_iter().filter(|(k, _)| k != "undo").map(|(k, v)| format!("{k}={}", encode(&v))).collect();
    if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    }
}

/// The decision ids a just-made decision can be undone by (`?undo=1,2,3`).
fn undo_ids(p: &BTreeMap<String, String>) -> Vec<i64> {
    p.get("undo").map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect()).unwrap_or_default()
}

async fn queue(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let p = params(&uri);
    let (filter, page) = queue_filter(&p);
    let started = std::time::Instant::now();
    // One row more than a page tells whether there is a next page.
    let mut rows = match app.store.review_queue(&QueueFilter { limit: PAGE + 1, ..filter }).await {
        Ok(rows) => rows,
        Err(e) => return ApiError::store(e).into_response(),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let (clusters, clusters_complete) = match clusters::index(&app).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // One representative per re-used photo on the page, with how many others show it.
    let mut seen = BTreeSet::new();
    let items: Vec<html::QueueItem> = rows
        .into_iter()
        .filter(|row| clusters.cluster(row.object_id).is_none_or(|c| seen.insert(c)))
        .map(|row| {
            let copies = clusters.others(row.object_id).len();
            html::QueueItem { row, copies }
        })
        .collect();
    let models: Vec<(String, String)> = app.processor.manifests().iter().map(|m| (m.name.clone(), m.version.clone())).collect();
    let labels: BTreeSet<String> = app.processor.manifests().iter().flat_map(|m| m.labels.iter().map(|l| l.name.clone())).collect();
    let view = html::QueueView {
        items,
        page,
        more,
        params: p.clone(),
        here: here_without_undo(&uri),
        undo: undo_ids(&p),
        labels: labels.into_iter().collect(),
        models,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        clusters_complete,
    };
    html::queue(&r, view).into_response()
}

/// A stored object's picture: a scan with its boxes drawn, a listing photo as it is; scaled to
/// at most `w` pixels wide. From the uploads, or a local file under one of `--images`.
async fn image(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    if let Err(resp) = reviewer(&app, &headers, &uri).await {
        return resp;
    }
    let Ok(id) = id.parse::<i64>() else { return ApiError::bad_request("bad_id", "not an object id").into_response() };
    let width: u32 = params(&uri).get("w").and_then(|w| w.parse().ok()).unwrap_or(1600).clamp(32, 4096);
    let record = match app.store.record(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return ApiError::not_found(format!("no object {id}")).into_response(),
        Err(e) => return ApiError::store(e).into_response(),
    };
    let Some(bytes) = app.picture(&record.uri) else {
        return ApiError::not_found(format!("the picture of object {id} is not kept here (start tusk serve with --images FOLDER for scanned folders)")).into_response();
    };
    let limits = app.opts.limits;
    let jpeg = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let decoded = crate::decode::decode(&bytes, &limits).map_err(|e| e.to_string())?;
        let mut rgb = decoded.rgb;
        if record.meta.kind == Kind::Xray {
            rgb = crate::overlay::render(&record, rgb);
        }
        let img = image::DynamicImage::ImageRgb8(rgb);
        let img = if img.width() > width { img.resize(width, width.saturating_mul(4), image::imageops::FilterType::Triangle) } else { img };
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await;
    match jpeg {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=300")], bytes).into_response(),
        Ok(Err(e)) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "undecodable", e).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
    }
}

async fn object_page(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Ok(id) = id.parse::<i64>() else { return ApiError::bad_request("bad_id", "not an object id").into_response() };
    let record = match app.store.record(id).await {
        Ok(Some(rec)) => rec,
        Ok(None) => return (StatusCode::NOT_FOUND, html::message(&r, "No such object", &format!("There is no object {id}."))).into_response(),
        Err(e) => return ApiError::store(e).into_response(),
    };
    let decisions = match app.store.decisions(&DecisionFilter { object_id: Some(id), ..Default::default() }).await {
        Ok(d) => d,
        Err(e) => return ApiError::store(e).into_response(),
    };
    let cluster = match clusters::index(&app).await {
        Ok((c, _)) => c.others(id),
        Err(e) => return e.into_response(),
    };
    // The same photo posted elsewhere, verified, with the evidence.
    let mut same = Vec::new();
    if record.meta.kind == Kind::Listing {
        let mut catalog = app.catalog.write().await;
        if let Err(e) = catalog.refresh(&app.store).await {
            return ApiError::store(e).into_response();
        }
        let catalog = catalog.downgrade();
        if let Some(pos) = catalog.by_uri(&record.uri) {
            let mut q = Query::from_entry(&catalog.entries[pos]);
            q.features = reuse::entry_features(&catalog, &app.store, pos).await.ok().flatten();
            if let Ok(found) = reuse::matches(&catalog, &app.store, &q, &Rule::new(HashKind::Default, None), &Params::default()).await {
                for m in found.iter().filter(|m| m.matched && m.entry != pos) {
                    let e = &catalog.entries[m.entry];
                    same.push(html::SamePhoto { id: e.id, seller: e.seller_id.clone(), platform: e.platform.clone(), uri: e.uri.clone(), evidence: reuse::match_json(&catalog, &record.uri, m) });
                }
            }
        }
    }
    let thresholds: BTreeMap<(String, String), f32> =
        app.processor.manifests().iter().flat_map(|m| m.labels.iter().map(move |l| ((m.name.clone(), l.name.clone()), l.threshold))).collect();
    let p = params(&uri);
    let view = html::ObjectView { id, record, decisions, cluster, same, thresholds, here: here_without_undo(&uri), undo: undo_ids(&p), has_picture: false };
    let has_picture = app.picture(&view.record.uri).is_some();
    html::object(&r, html::ObjectView { has_picture, ..view }).into_response()
}

/// A form's boxes (`box{i}_label`, `box{i}_x0` … `box{i}_y1`), as the decision's JSON.
fn form_boxes(form: &BTreeMap<String, String>) -> Result<Option<serde_json::Value>, ApiError> {
    let mut boxes = Vec::new();
    for i in 0..100 {
        let Some(label) = form.get(&format!("box{i}_label")) else { break };
        let label = label.trim();
        if label.is_empty() {
            continue;
        }
        let mut c = [0f64; 4];
        for (k, v) in ["x0", "y0", "x1", "y1"].iter().zip(c.iter_mut()) {
            *v = form
                .get(&format!("box{i}_{k}"))
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| ApiError::bad_request("bad_decision", format!("box {} needs a number for {k}", i + 1)))?;
        }
        boxes.push(serde_json::json!({"label": label, "box": c}));
    }
    Ok(form.contains_key("box0_label").then(|| serde_json::Value::Array(boxes)))
}

/// Adds `?undo=…` (or `&undo=…`) to a local address.
fn with_undo(back: &str, ids: &[i64]) -> String {
    if ids.is_empty() {
        return back.to_string();
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("{back}{}undo={}", if back.contains('?') { '&' } else { '?' }, ids.join(","))
}

async fn decide_form(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>, Form(form): Form<BTreeMap<String, String>>) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = session::token(&headers).unwrap_or_default();
    if !session::form_ok(&headers, &token, form.get("csrf").map(String::as_str)) {
        return ApiError::new(StatusCode::FORBIDDEN, "bad_form", "the form is not from this page (CSRF check failed)").into_response();
    }
    let Ok(id) = id.parse::<i64>() else { return ApiError::bad_request("bad_id", "not an object id").into_response() };
    let boxes = match form_boxes(&form) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let input = DecisionInput {
        action: form.get("action").cloned().unwrap_or_default(),
        reason: form.get("reason").cloned().filter(|r| !r.is_empty()),
        note: form.get("note").cloned(),
        boxes,
        undoes: None,
        cluster: form.get("cluster").is_some_and(|v| v == "1" || v == "on"),
    };
    match decide(&app, &r.caller.name, id, &input).await {
        Ok(written) => {
            let ids: Vec<i64> = written.iter().map(|d| d.id).collect();
            Redirect::to(&with_undo(&local(form.get("back")), &ids)).into_response()
        }
        Err(e) => (e.status, html::message(&r, "Not recorded", &e.message)).into_response(),
    }
}

async fn undo_form(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Form(form): Form<BTreeMap<String, String>>) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let token = session::token(&headers).unwrap_or_default();
    if !session::form_ok(&headers, &token, form.get("csrf").map(String::as_str)) {
        return ApiError::new(StatusCode::FORBIDDEN, "bad_form", "the form is not from this page (CSRF check failed)").into_response();
    }
    let ids: Vec<i64> = form.get("ids").map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect()).unwrap_or_default();
    for undoes in ids {
        let found = app.store.decisions(&DecisionFilter { after: Some(undoes - 1), limit: Some(1), ..Default::default() }).await;
        let Some(d) = found.ok().and_then(|v| v.into_iter().next()).filter(|d| d.id == undoes) else { continue };
        let input = DecisionInput { action: "undo".into(), undoes: Some(undoes), ..Default::default() };
        if let Err(e) = decide(&app, &r.caller.name, d.object_id, &input).await {
            tracing::info!("undo of decision {undoes}: {}", e.message);
        }
    }
    Redirect::to(&local(form.get("back"))).into_response()
}

/// The seller–seller links with, for each, whether a reviewer confirmed a find among the
/// photos they share.
async fn links_with_confirmation(app: &Arc<App>) -> Result<Vec<(reuse::Link, bool)>, ApiError> {
    let (index, _) = clusters::index(app).await?;
    let standing = app.store.decisions(&DecisionFilter::default()).await.map_err(ApiError::store)?;
    let confirmed: BTreeSet<i64> = crate::store::review::standing(&standing).into_iter().filter(|(_, d)| d.action == "confirm").map(|(o, _)| o).collect();
    let catalog = app.catalog.read().await;
    let multi: Vec<reuse::Cluster> = index.clusters.iter().filter(|c| c.sellers.len() >= 2 && c.members.iter().all(|&p| p < catalog.entries.len())).cloned().collect();
    let links = reuse::links(&catalog, &multi);
    Ok(links
        .into_iter()
        .map(|l| {
            let shared = multi.iter().filter(|c| c.sellers.contains(&l.source) && c.sellers.contains(&l.target));
            let yes = shared.flat_map(|c| c.members.iter()).any(|&p| confirmed.contains(&catalog.entries[p].id));
            (l, yes)
        })
        .collect())
}

async fn seller_page(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri, Path(seller): Path<String>) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let links = match links_with_confirmation(&app).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let links: Vec<(reuse::Link, bool)> = links.into_iter().filter(|(l, _)| l.source == seller || l.target == seller).collect();
    let catalog = app.catalog.read().await;
    let objects: Vec<(i64, String, Option<String>, Option<String>)> =
        catalog.by_seller(&seller).into_iter().map(|p| &catalog.entries[p]).map(|e| (e.id, e.uri.clone(), e.listing_id.clone(), e.platform.clone())).collect();
    html::seller(&r, &seller, &objects, &links).into_response()
}

async fn network_page(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let r = match reviewer(&app, &headers, &uri).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match links_with_confirmation(&app).await {
        Ok(links) => html::network(&r, &links).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn export(State(app): State<Arc<App>>, headers: HeaderMap, format: reuse::export::Format) -> Response {
    let here: Uri = "/network".parse().unwrap_or_default();
    if let Err(resp) = reviewer(&app, &headers, &here).await {
        return resp;
    }
    let links = match links_with_confirmation(&app).await {
        Ok(l) => l.into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
        Err(e) => return e.into_response(),
    };
    let catalog = app.catalog.read().await;
    let mut out = Vec::new();
    if let Err(e) = reuse::export::write_links(&mut out, format, &catalog, &links) {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e.to_string()).into_response();
    }
    let (ct, name) = match format {
        reuse::export::Format::Csv => ("text/csv; charset=utf-8", "tusk-network.csv"),
        reuse::export::Format::GraphMl => ("application/graphml+xml", "tusk-network.graphml"),
        reuse::export::Format::Json => ("application/json", "tusk-network.json"),
    };
    ([(header::CONTENT_TYPE, ct.to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn back_links_stay_local_and_valid_headers() {
        let back = |s: &str| local(Some(&s.to_string()));
        assert_eq!(back("/objects/3?label=ivory"), "/objects/3?label=ivory");
        assert_eq!(back("//evil.example/"), "/");
        assert_eq!(back("https://evil.example/"), "/");
        assert_eq!(back("/\\evil"), "/");
        // Found by fuzzing: a line break made the redirect's Location invalid (a 500).
        assert_eq!(back("/POST /decisions/undo HTTP/1.1\r\nHost: tusk"), "/");
        assert!(axum::http::HeaderValue::try_from(back("/a b")).is_ok());
    }
}
