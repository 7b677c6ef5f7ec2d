//! What the store keeps for human review: reviewers' decisions (append-only, undo is a row of
//! its own) and the queue of flagged objects they work through.

use serde::Serialize;

/// Why a reviewer rejected a flag: the look-alikes the models confuse with wildlife products.
pub const REJECT_REASONS: [&str; 6] = ["bone", "resin", "ceramic", "toy_or_replica", "other_animal", "other"];

/// A reviewer's new decision, as the page or the API hands it to the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewDecision {
    /// The object decided on.
    pub object_id: i64,
    /// `confirm`, `reject` or `undo`.
    pub action: String,
    /// Why rejected (one of [`REJECT_REASONS`]).
    pub reason: Option<String>,
    /// Free note.
    pub note: Option<String>,
    /// Boxes the reviewer fixed or added on a scan: a JSON array of `{"label", "box"}`.
    pub boxes: Option<serde_json::Value>,
    /// The decision an `undo` takes back.
    pub undoes: Option<i64>,
    /// The token's name.
    pub who: String,
}

/// A stored decision with what the reviewer saw when making it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Its id (increasing: later decisions have larger ids).
    pub id: i64,
    /// The object.
    pub object_id: i64,
    /// The object's bytes when decided (a decision is about these bytes only).
    pub fingerprint: String,
    /// `confirm`, `reject` or `undo`.
    pub action: String,
    /// Why rejected.
    pub reason: Option<String>,
    /// Free note.
    pub note: Option<String>,
    /// Boxes the reviewer drew.
    pub boxes: Option<serde_json::Value>,
    /// The decision an `undo` takes back.
    pub undoes: Option<i64>,
    /// The token's name.
    pub who: String,
    /// When (UTC, ISO 8601).
    pub at: String,
    /// The model of the strongest flagged detection then.
    pub model: Option<String>,
    /// Its version.
    pub model_version: Option<String>,
    /// The label it flagged.
    pub label: Option<String>,
    /// Its score.
    pub score: Option<f64>,
    /// The label's threshold in that model version.
    pub threshold: Option<f64>,
}

/// Which decisions [`super::Backend::decisions`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionFilter {
    /// Only this object's.
    pub object_id: Option<i64>,
    /// Only those with a larger id (paging, following new decisions).
    pub after: Option<i64>,
    /// At most this many (oldest first).
    pub limit: Option<i64>,
}

/// The order of the review queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueOrder {
    /// Most recently stored first.
    #[default]
    Newest,
    /// Nearest its label's threshold first (where the model is least sure).
    Uncertain,
}

/// Filters of the review queue; `None` lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Flagged with this label.
    pub label: Option<String>,
    /// `listing` or `xray`.
    pub kind: Option<String>,
    /// From this marketplace.
    pub platform: Option<String>,
    /// Posted by this seller.
    pub seller: Option<String>,
    /// Flagged by this model version.
    pub model_version: Option<String>,
    /// Decided (a standing confirm or reject) or not.
    pub decided: Option<bool>,
    /// The order.
    pub order: QueueOrder,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// One flagged object in the review queue, with its strongest flagged detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueRow {
    /// The object.
    pub object_id: i64,
    /// Where it came from.
    pub uri: String,
    /// `listing` or `xray`.
    pub kind: String,
    /// The seller (listings).
    pub seller_id: Option<String>,
    /// The marketplace.
    pub platform: Option<String>,
    /// The listing.
    pub listing_id: Option<String>,
    /// When stored.
    pub updated_at: String,
    /// The flagged label.
    pub label: String,
    /// Its score.
    pub score: f64,
    /// The model.
    pub model: String,
    /// Its version.
    pub model_version: String,
    /// The label's threshold.
    pub threshold: Option<f64>,
    /// The standing decision (`confirm`/`reject`), if any.
    pub decision: Option<String>,
}

/// The standing decision of each object among `decisions` (ids ascending): the latest confirm
/// or reject that no undo took back.
pub fn standing(decisions: &[Decision]) -> std::collections::BTreeMap<i64, &Decision> {
    let undone: std::collections::BTreeSet<i64> = decisions.iter().filter_map(|d| d.undoes).collect();
    let mut out = std::collections::BTreeMap::new();
    for d in decisions.iter().filter(|d| d.action != "undo" && !undone.contains(&d.id)) {
        out.insert(d.object_id, d);
    }
    out
}

/// A model's threshold for `label` out of the stored thresholds JSON.
pub(super) fn threshold_of(thresholds: &str, label: &str) -> Option<f64> {
    serde_json::from_str::<serde_json::Value>(thresholds).ok()?.get(label)?.as_f64()
}

/// The SQL dialects the review queue is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `?` placeholders, JSON by `json_extract`, integers for booleans.
    Sqlite,
    /// `$n` placeholders, `jsonb`, booleans.
    Postgres,
}

/// The review queue's query for `f` and its text parameters in order (then LIMIT and OFFSET,
/// bound by the caller). Only the filters given appear in the SQL, so each database can use
/// its indexes. Newest-first walks objects backwards by id and stops after a page; the
/// uncertain order ranks every flagged object's strongest detection by its distance to the
/// threshold.
pub(super) fn queue_sql(f: &QueueFilter, dialect: Dialect) -> (String, Vec<String>) {
    let mut params: Vec<String> = Vec::new();
    let mut ph = |v: &str| {
        params.push(v.to_string());
        match dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", params.len()),
        }
    };
    // The standing decision (the latest confirm or reject no undo took back) and the label's
    // threshold. SQLite looks each up per row through its indexes (it does not index a
    // materialised table); PostgreSQL computes them once and hash-joins.
    let (with, joins, decision, threshold, flagged) = match dialect {
        Dialect::Sqlite => (
            "",
            "",
            "(SELECT x.action FROM decisions x WHERE x.object_id = o.id AND x.fingerprint = o.fingerprint AND x.action <> 'undo'
                AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = x.id) ORDER BY x.id DESC LIMIT 1)",
            "COALESCE(json_extract(m.thresholds, '$.\"' || {label} || '\"'), 0.5)",
            "= 1",
        ),
        Dialect::Postgres => (
            "WITH s AS MATERIALIZED (
               SELECT x.object_id, x.fingerprint, x.action FROM decisions x WHERE x.id IN (
                 SELECT MAX(y.id) FROM decisions y WHERE y.action <> 'undo' AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = y.id)
                 GROUP BY y.object_id, y.fingerprint)),
             t AS MATERIALIZED (SELECT m.id AS model_id, t.key AS label, t.value::float8 AS threshold FROM models m, jsonb_each_text(m.thresholds::jsonb) t)",
            "LEFT JOIN s ON s.object_id = o.id AND s.fingerprint = o.fingerprint",
            "s.action",
            "COALESCE((SELECT t.threshold FROM t WHERE t.model_id = m.id AND t.label = {label}), 0.5)",
            "",
        ),
    };
    // Conditions on the detection (d or d2), then on the object.
    let mut on_detection = String::new();
    if let Some(l) = &f.label {
        on_detection += &format!(" AND {{d}}.label = {}", ph(l));
    }
    if let Some(v) = &f.model_version {
        on_detection += &format!(" AND {{d}}.model_id IN (SELECT id FROM models WHERE version = {})", ph(v));
    }
    let mut on_object = String::new();
    for (col, v) in [("kind", &f.kind), ("platform", &f.platform), ("seller_id", &f.seller)] {
        if let Some(v) = v {
            on_object += &format!(" AND o.{col} = {}", ph(v));
        }
    }
    let decided = match f.decided {
        Some(true) => format!(" AND {decision} IS NOT NULL"),
        Some(false) => format!(" AND {decision} IS NULL"),
        None => String::new(),
    };
    let limit = match dialect {
        Dialect::Sqlite => "LIMIT ? OFFSET ?".to_string(),
        Dialect::Postgres => format!("LIMIT ${} OFFSET ${}", params.len() + 1, params.len() + 2),
    };
    let columns = format!("o.id, o.uri, o.kind, o.seller_id, o.platform, o.listing_id, CAST(o.updated_at AS TEXT) AS updated_at, d.label, d.score, m.name, m.version, m.thresholds, {decision} AS decision");
    let sql = match f.order {
        // Walks objects backwards by id and stops after a page.
        QueueOrder::Newest => format!(
            "{with}
             SELECT {columns}
             FROM objects o
             JOIN detections d ON d.id = (SELECT d2.id FROM detections d2 WHERE d2.object_id = o.id AND d2.fingerprint = o.fingerprint AND d2.flagged {flagged}{}
                                           ORDER BY d2.score DESC, d2.id LIMIT 1)
             JOIN models m ON m.id = d.model_id
             {joins}
             WHERE TRUE{on_object}{decided}
             ORDER BY o.id DESC {limit}",
            on_detection.replace("{d}", "d2"),
        ),
        // Ranks every flagged object's strongest detection by its distance to the threshold.
        QueueOrder::Uncertain => {
            let strongest = match dialect {
                // SQLite takes a MAX() row's other columns from that row: the strongest detection.
                Dialect::Sqlite => format!(
                    "SELECT d.id FROM detections d JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint
                     WHERE d.flagged {flagged}{}{on_object} GROUP BY o.id HAVING d.score = MAX(d.score)",
                    on_detection.replace("{d}", "d")
                ),
                Dialect::Postgres => format!(
                    "SELECT DISTINCT ON (o.id) d.id FROM detections d JOIN objects o ON o.id = d.object_id AND o.fingerprint = d.fingerprint
                     WHERE d.flagged {flagged}{}{on_object} ORDER BY o.id, d.score DESC, d.id",
                    on_detection.replace("{d}", "d")
                ),
            };
            format!(
                "{with}
                 SELECT {columns}
                 FROM detections d JOIN objects o ON o.id = d.object_id JOIN models m ON m.id = d.model_id
                 {joins}
                 WHERE d.id IN ({strongest}){decided}
                 ORDER BY ABS(d.score - {}), o.id DESC {limit}",
                threshold.replace("{label}", "d.label")
            )
        }
    };
    (sql, params)
}
