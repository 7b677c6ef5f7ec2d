//! Reviewers' decisions over HTTP: `POST /v1/objects/{id}/decisions` and `GET /v1/decisions`,
//! and [`decide`], which the review page's forms call too. A decision can cover the object's
//! whole re-used-photo cluster (every copy shows the same photo).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use serde::Deserialize;

use super::api::{caller, query};
use super::auth::Role;
use super::error::ApiError;
use super::App;
use crate::store::review::REJECT_REASONS;
use crate::store::{Decision, DecisionFilter, NewDecision};

/// What a reviewer decides, as posted (JSON) or built from a form.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// `confirm`, `reject` or `undo`.
    pub action: String,
    /// Why rejected: bone, resin, ceramic, toy_or_replica, other_animal or other.
    pub reason: Option<String>,
    /// Free note.
    pub note: Option<String>,
    /// Boxes fixed or added on a scan: `[{"label": "ivory", "box": [x0, y0, x1, y1]}]`.
    #[schema(value_type = Option<Object>)]
    pub boxes: Option<serde_json::Value>,
    /// For `undo`: the decision taken back.
    pub undoes: Option<i64>,
    /// Apply to every object of this object's re-used-photo cluster.
    #[serde(default)]
    pub cluster: bool,
}

/// Checks the input; the error names the field at fault.
fn validate(input: &DecisionInput) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request("bad_decision", m));
    match input.action.as_str() {
        "confirm" => {}
        "reject" => match input.reason.as_deref() {
            Some(r) if REJECT_REASONS.contains(&r) => {}
            other => return bad(format!("a reject needs a reason, one of {} (got {other:?})", REJECT_REASONS.join(", "))),
        },
        "undo" if input.undoes.is_some() => {}
        "undo" => return bad("an undo names the decision it takes back: \"undoes\": ID".into()),
        other => return bad(format!("action {other:?} is not confirm, reject or undo")),
    }
    if input.note.as_deref().is_some_and(|n| n.len() > 4000) {
        return bad("the note is over 4000 bytes".into());
    }
    if let Some(boxes) = &input.boxes {
        let ok = boxes.as_array().is_some_and(|a| {
            a.len() <= 100
                && a.iter().all(|b| {
                    let label = b.get("label").and_then(|l| l.as_str()).is_some_and(|l| !l.is_empty() && l.len() <= 64);
                    let coords: Option<Vec<f64>> = b.get("box").and_then(|v| v.as_array()).map(|v| v.iter().filter_map(|x| x.as_f64()).collect());
                    let fine = coords.is_some_and(|c| c.len() == 4 && c.iter().all(|x| x.is_finite() && *x >= 0.0) && c[0] < c[2] && c[1] < c[3]);
                    label && fine && b.as_object().is_some_and(|o| o.len() == 2)
                })
        });
        if !ok {
            return bad("boxes must be a list of {\"label\", \"box\": [x0, y0, x1, y1]} with x0 < x1, y0 < y1, at most 100".into());
        }
    }
    Ok(())
}

/// Records `input` on `object_id` (and, when asked, on the rest of its cluster) for `who`.
/// Returns the decisions written, the object's first.
pub async fn decide(app: &Arc<App>, who: &str, object_id: i64, input: &DecisionInput) -> Result<Vec<Decision>, ApiError> {
    validate(input)?;
    if app.store.record(object_id).await.map_err(ApiError::store)?.is_none() {
        return Err(ApiError::not_found(format!("no object {object_id}")));
    }
    let mut targets = vec![object_id];
    if input.cluster && input.action != "undo" {
        let clusters = super::review::clusters::complete(app).await?;
        targets.extend(clusters.others(object_id));
    }
    let mut out = Vec::new();
    for id in targets {
        let d = NewDecision {
            object_id: id,
            action: input.action.clone(),
            reason: input.reason.clone(),
            note: input.note.clone().filter(|n| !n.trim().is_empty()),
            boxes: if id == object_id { input.boxes.clone() } else { None },
            undoes: input.undoes,
            who: who.to_string(),
        };
        match app.store.add_decision(&d).await.map_err(ApiError::store)? {
            Some(d) => out.push(d),
            None if id == object_id && input.action == "undo" => {
                return Err(ApiError::new(StatusCode::CONFLICT, "nothing_to_undo", format!("decision {:?} is not a standing decision of object {object_id}", input.undoes)));
            }
            None => {}
        }
    }
    tracing::info!(target: "tusk::serve::review", object_id, action = input.action, decisions = out.len(), who, "decision");
    Ok(out)
}

/// Record a reviewer's decision on an object.
#[utoipa::path(post, path = "/v1/objects/{id}/decisions", params(("id" = i64, Path, description = "object id")),
    request_body(content = DecisionInput, description = "the decision"),
    responses((status = 201, description = "{\"decisions\": [...]}: the rows written, with who, when, and the model, version, label, score and threshold seen"),
              (status = 400, description = "bad decision"), (status = 403, description = "not an analyst or admin token"), (status = 404, description = "no such object"),
              (status = 409, description = "undo of a decision that is not standing")),
    security(("bearer" = [])))]
pub async fn post_decision(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let who = caller(&app, &headers, Some(Role::Analyst)).await?;
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request("bad_id", format!("{id:?} is not an object id")))?;
    let input: DecisionInput = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("bad_decision", format!("the body is not a decision: {e}")))?;
    let written = decide(&app, &who.name, id, &input).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "decisions": written }))))
}

/// Stored decisions, oldest first (append-only: undo rows included).
#[utoipa::path(get, path = "/v1/decisions",
    params(("object_id" = Option<i64>, Query, description = "only this object's"), ("after" = Option<i64>, Query, description = "only ids above this"), ("limit" = Option<i64>, Query, description = "at most this many (default 1000)")),
    responses((status = 200, description = "{\"decisions\": [...]}")), security(("bearer" = [])))]
pub async fn get_decisions(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Result<Json<serde_json::Value>, ApiError> {
    caller(&app, &headers, Some(Role::Analyst)).await?;
    let q = query(&uri, &["object_id", "after", "limit"])?;
    let num = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k).map(|v| v.parse::<i64>().map_err(|_| ApiError::bad_request("bad_query", format!("{k}={v:?} is not a number")))).transpose()
    };
    let filter = DecisionFilter { object_id: num("object_id")?, after: num("after")?, limit: Some(num("limit")?.unwrap_or(1000).clamp(1, 100_000)) };
    let rows = app.store.decisions(&filter).await.map_err(ApiError::store)?;
    Ok(Json(serde_json::json!({ "decisions": rows })))
}
