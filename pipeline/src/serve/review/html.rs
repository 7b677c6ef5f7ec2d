//! The review pages' markup (maud: HTML checked at compile time, every value escaped). Each
//! queue item carries `data-object-id`, each decision button `data-action`, so people's scripts
//! and the browser tests can drive the page.

use std::collections::BTreeMap;

use axum::response::Html;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Reviewer;
use crate::record::Record;
use crate::reuse::Link;
use crate::serve::auth::Caller;
use crate::store::review::REJECT_REASONS;
use crate::store::{Decision, QueueRow};

const CSS: &str = r#"
:root { --fg: #1d2430; --muted: #5b6676; --line: #d5dbe3; --bg: #f6f7f9; --ok: #1c7c3c; --no: #b42318; --accent: #174ea6; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.2rem; align-items: center; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
header nav a { margin-right: 1rem; color: var(--accent); }
header .who { margin-left: auto; color: var(--muted); }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.35rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
form.inline { display: inline; }
button { font: inherit; padding: .25rem .7rem; border: 1px solid var(--line); border-radius: 5px; background: #fff; cursor: pointer; }
button[data-action=confirm] { border-color: var(--ok); color: var(--ok); }
button[data-action=reject] { border-color: var(--no); color: var(--no); }
select, input { font: inherit; padding: .2rem .35rem; border: 1px solid var(--line); border-radius: 4px; }
#filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; background: #fff; padding: .7rem; border: 1px solid var(--line); border-radius: 8px; }
#filters label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
ol.queue { list-style: none; padding: 0; margin: 1rem 0; }
.item { display: grid; grid-template-columns: 132px 1fr auto; gap: 1rem; align-items: center; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .6rem; margin-bottom: .6rem; }
.item:focus { border-color: #f5a623; box-shadow: 0 0 0 2px #f5a62366; outline: none; }
.thumb img { width: 120px; height: 90px; object-fit: cover; border-radius: 4px; background: #e9ecf1; display: block; }
.thumb .none { width: 120px; height: 90px; display: flex; align-items: center; justify-content: center; font-size: .75rem; color: var(--muted); background: #e9ecf1; border-radius: 4px; }
.title { font-weight: 600; font-size: 1.05rem; }
.meta { color: var(--muted); font-size: .85rem; }
.actions { display: flex; flex-direction: column; gap: .35rem; align-items: stretch; }
.actions form { display: flex; gap: .35rem; align-items: center; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 9px; font-size: .8rem; border: 1px solid; }
.badge.confirm { color: var(--ok); } .badge.reject { color: var(--no); } .badge.open { color: var(--muted); }
.cluster { font-size: .85rem; }
#undo-bar { position: sticky; top: 0; background: #fff8e1; border: 1px solid #f0d48a; padding: .5rem .8rem; border-radius: 8px; display: flex; gap: 1rem; align-items: center; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); font-size: .9rem; vertical-align: top; }
.object { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.2rem; align-items: start; }
#boxes input { width: 4.2rem; } #boxes input[type=text] { width: 7rem; } #boxes table { width: auto; }
.object figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .5rem; }
.object figure img { max-width: 100%; display: block; margin: auto; }
.same { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: .8rem; }
.same > div { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .5rem; }
.same img { width: 100%; height: 180px; object-fit: contain; background: #e9ecf1; }
code { font-size: .8rem; word-break: break-all; }
.help { color: var(--muted); font-size: .85rem; }
.pager { display: flex; gap: 1rem; }
"#;

const JS: &str = r#"
(function () {
  const items = () => [...document.querySelectorAll('.item[data-object-id]')];
  const current = () => document.activeElement && document.activeElement.closest('.item[data-object-id]');
  document.addEventListener('DOMContentLoaded', () => { const first = items()[0]; if (first && !document.querySelector('[autofocus]')) first.focus(); });
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest('input, select, textarea')) { if (e.key === 'Escape') e.target.blur(); return; }
    const all = items(), cur = current(), i = all.indexOf(cur);
    const click = (sel) => { const b = cur && cur.querySelector(sel); if (b) b.click(); };
    switch (e.key) {
      case 'j': (all[i + 1] || all[all.length - 1] || {focus() {}}).focus(); break;
      case 'k': (all[Math.max(i - 1, 0)] || {focus() {}}).focus(); break;
      case 'c': click('[data-action=confirm]'); break;
      case 'r': { const s = cur && cur.querySelector('select[name=reason]'); if (s) { s.focus(); e.preventDefault(); } break; }
      case 'o': case 'Enter': click('a.title'); break;
      case 'u': { const u = document.querySelector('#undo-bar [data-action=undo]'); if (u) u.click(); break; }
      case '/': { const f = document.querySelector('#filters select, #filters input'); if (f) { f.focus(); e.preventDefault(); } break; }
      default: return;
    }
  });
})();
"#;

/// A page with the header (queue, network, who is signed in, sign-out).
fn layout(title: &str, r: Option<&Reviewer>, body: Markup) -> Html<String> {
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tusk review" }
                style { (PreEscaped(CSS)) }
                script { (PreEscaped(JS)) }
            }
            body {
                header {
                    a.brand href="/" { "tusk review" }
                    @if let Some(r) = r {
                        nav { a href="/" { "Queue" } a href="/network" { "Seller network" } }
                        span.who { "Signed in as " strong { (r.caller.name) } " (" (r.caller.role.as_str()) ")" }
                        form.inline method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(r.csrf);
                            button type="submit" data-action="signout" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string())
}

/// The sign-in form.
pub fn signin(failed: bool, next: &str) -> Html<String> {
    layout("Sign in", None, html! {
        h1 { "Sign in" }
        @if failed { p role="alert" style="color: var(--no)" { "That token is unknown or revoked." } }
        form #signin method="post" action="/signin" {
            input type="hidden" name="next" value=(next);
            label { "Analyst token " input type="password" name="token" autocomplete="current-password" size="72" autofocus required; }
            " "
            button type="submit" data-action="signin" { "Sign in" }
        }
        p.help { "Ask an admin for a token: " code { "tusk token create --role analyst --name YOUR-NAME" } ". It is kept in an HttpOnly cookie until you sign out." }
    })
}

/// A signed-in token whose role may not review.
pub fn forbidden(caller: &Caller, csrf: &str) -> Html<String> {
    let r = Reviewer { caller: caller.clone(), csrf: csrf.to_string() };
    layout("Not allowed", Some(&r), html! {
        h1 { "Not allowed" }
        p #forbidden { "A " (caller.role.as_str()) " token cannot review. Sign out and sign in with an analyst or admin token." }
    })
}

/// A short message page.
pub fn message(r: &Reviewer, title: &str, text: &str) -> Html<String> {
    layout(title, Some(r), html! { h1 { (title) } p #message { (text) } p { a href="/" { "Back to the queue" } } })
}

/// One queue row and the number of other objects showing the same photo.
pub struct QueueItem {
    /// The row.
    pub row: QueueRow,
    /// Others in its cluster.
    pub copies: usize,
}

/// What the queue page shows.
pub struct QueueView {
    /// The rows of this page, one per re-used photo.
    pub items: Vec<QueueItem>,
    /// Page number, from 0.
    pub page: i64,
    /// Whether a next page exists.
    pub more: bool,
    /// The filters as given.
    pub params: BTreeMap<String, String>,
    /// This page's address (forms come back here).
    pub here: String,
    /// Decisions just made, which the undo bar takes back.
    pub undo: Vec<i64>,
    /// Every label of the loaded models.
    pub labels: Vec<String>,
    /// Loaded models (name, version).
    pub models: Vec<(String, String)>,
    /// Time the store took for the queue, for the footer.
    pub took_ms: f64,
    /// Whether the re-used-photo clusters cover every object yet.
    pub clusters_complete: bool,
}

fn undo_bar(r: &Reviewer, ids: &[i64], back: &str) -> Markup {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    html! {
        @if !ids.is_empty() {
            div #undo-bar role="status" {
                span { "Recorded " (ids.len()) " decision" @if ids.len() > 1 { "s" } "." }
                form.inline method="post" action="/decisions/undo" {
                    input type="hidden" name="csrf" value=(r.csrf);
                    input type="hidden" name="ids" value=(ids.join(","));
                    input type="hidden" name="back" value=(back);
                    button type="submit" data-action="undo" { "Undo (u)" }
                }
            }
        }
    }
}

fn decision_forms(r: &Reviewer, id: i64, copies: usize, back: &str) -> Markup {
    html! {
        form method="post" action=(format!("/objects/{id}/decide")) {
            input type="hidden" name="csrf" value=(r.csrf);
            input type="hidden" name="back" value=(back);
            input type="hidden" name="action" value="confirm";
            @if copies > 0 { label.cluster title="apply to every copy of this photo" { input type="checkbox" name="cluster" value="1"; " all " (copies + 1) } }
            button type="submit" data-action="confirm" { "Confirm (c)" }
        }
        form method="post" action=(format!("/objects/{id}/decide")) {
            input type="hidden" name="csrf" value=(r.csrf);
            input type="hidden" name="back" value=(back);
            input type="hidden" name="action" value="reject";
            select name="reason" aria-label="reason" required {
                option value="" { "reason…" }
                @for reason in REJECT_REASONS { option value=(reason) { (reason.replace('_', " ")) } }
            }
            input type="text" name="note" placeholder="note" size="10" aria-label="note";
            @if copies > 0 { label.cluster title="apply to every copy of this photo" { input type="checkbox" name="cluster" value="1"; " all" } }
            button type="submit" data-action="reject" { "Reject" }
        }
    }
}

fn badge(decision: Option<&str>) -> Markup {
    html! {
        @match decision {
            Some("confirm") => span.badge.confirm data-decision="confirm" { "confirmed" },
            Some("reject") => span.badge.reject data-decision="reject" { "rejected" },
            _ => span.badge.open data-decision="" { "to review" },
        }
    }
}

fn select(name: &str, label: &str, current: Option<&String>, options: &[(&str, &str)]) -> Markup {
    html! {
        label { (label) select name=(name) { @for (v, text) in options { option value=(v) selected[current.map(String::as_str) == Some(*v)] { (text) } } } }
    }
}

/// The queue of flagged objects.
pub fn queue(r: &Reviewer, v: QueueView) -> Html<String> {
    let p = &v.params;
    let labels: Vec<(&str, &str)> = std::iter::once(("", "any")).chain(v.labels.iter().map(|l| (l.as_str(), l.as_str()))).collect();
    let page_link = |page: i64| {
        let mut q: Vec<String> = p.iter().filter(|(k, _)| *k != "page" && *k != "undo").map(|(k, val)| format!("{k}={}", super::encode(val))).collect();
        q.push(format!("page={page}"));
        format!("/?{}", q.join("&"))
    };
    layout("Queue", Some(r), html! {
        (undo_bar(r, &v.undo, &v.here))
        h1 { "Flagged for review" }
        form #filters method="get" action="/" {
            (select("label", "label", p.get("label"), &labels))
            (select("kind", "kind", p.get("kind"), &[("", "any"), ("listing", "listing photo"), ("xray", "X-ray scan")]))
            (select("decided", "decided", p.get("decided"), &[("", "any"), ("no", "not yet"), ("yes", "decided")]))
            (select("order", "order", p.get("order"), &[("newest", "newest first"), ("uncertain", "most uncertain first")]))
            label { "platform" input type="text" name="platform" value=[p.get("platform")] size="10"; }
            label { "seller" input type="text" name="seller" value=[p.get("seller")] size="12"; }
            label { "model version" input type="text" name="model_version" value=[p.get("model_version")] size="6"; }
            button type="submit" data-action="filter" { "Filter" }
            a href="/" { "clear" }
        }
        @if v.items.is_empty() { p #empty { "Nothing flagged matches these filters." } }
        ol.queue {
            @for it in &v.items {
                @let row = &it.row;
                li.item data-object-id=(row.object_id) data-kind=(row.kind) data-label=(row.label) data-copies=(it.copies) tabindex="0" {
                    a.thumb href=(format!("/objects/{}", row.object_id)) tabindex="-1" {
                        img src=(format!("/objects/{}/image?w=240", row.object_id)) alt=(format!("object {}", row.object_id)) loading="lazy";
                    }
                    div {
                        a.title href=(format!("/objects/{}", row.object_id)) { (row.label.replace('_', " ")) " " (format!("{:.2}", row.score)) }
                        " " (badge(row.decision.as_deref()))
                        div.meta {
                            @if let Some(t) = row.threshold { "threshold " (format!("{t:.2}")) " · " }
                            (row.model) " " (row.model_version) " · " (if row.kind == "xray" { "X-ray scan" } else { "listing photo" })
                            @if let Some(pl) = &row.platform { " · " (pl) }
                            @if let Some(s) = &row.seller_id { " · seller " a href=(format!("/sellers/{}", super::encode(s))) { (s) } }
                        }
                        div.meta { code { (row.uri) } }
                        @if it.copies > 0 {
                            a.cluster href=(format!("/objects/{}#cluster", row.object_id)) data-cluster-size=(it.copies + 1) { "same photo: " (it.copies) " other cop" (if it.copies == 1 { "y" } else { "ies" }) }
                        }
                    }
                    div.actions { (decision_forms(r, row.object_id, it.copies, &v.here)) }
                }
            }
        }
        div.pager {
            @if v.page > 0 { a href=(page_link(v.page - 1)) rel="prev" { "← newer" } }
            @if v.more { a href=(page_link(v.page + 1)) rel="next" { "more →" } }
        }
        p.help {
            "Keys: j/k move · c confirm · r reason, then Enter · o open · u undo · / filters. Queue read in " (format!("{:.0}", v.took_ms)) " ms."
            @if !v.clusters_complete { span #clusters-pending { " Re-used photos are still being grouped: copies may show as items of their own." } }
        }
    })
}

/// Another object showing the same photo, with the match's evidence.
pub struct SamePhoto {
    /// Its id.
    pub id: i64,
    /// Its seller.
    pub seller: Option<String>,
    /// Its marketplace.
    pub platform: Option<String>,
    /// Its uri.
    pub uri: String,
    /// The match as the API reports it.
    pub evidence: serde_json::Value,
}

/// What the object page shows.
pub struct ObjectView {
    /// The object id.
    pub id: i64,
    /// Its stored record.
    pub record: Record,
    /// Its decisions, oldest first.
    pub decisions: Vec<Decision>,
    /// The other objects of its cluster.
    pub cluster: Vec<i64>,
    /// Other sellers' objects showing the same photo.
    pub same: Vec<SamePhoto>,
    /// Thresholds by (model, label).
    pub thresholds: BTreeMap<(String, String), f32>,
    /// This page's address.
    pub here: String,
    /// Decisions just made.
    pub undo: Vec<i64>,
    /// Whether its picture is kept here.
    pub has_picture: bool,
}

/// One object under review.
pub fn object(r: &Reviewer, v: ObjectView) -> Html<String> {
    let rec = &v.record;
    let standing = crate::store::review::standing(&v.decisions).get(&v.id).map(|d| (*d).clone());
    let flagged: Vec<_> = rec.detections.iter().filter(|d| d.flagged).collect();
    let is_scan = rec.meta.kind == crate::source::Kind::Xray;
    layout(&format!("Object {}", v.id), Some(r), html! {
        (undo_bar(r, &v.undo, &v.here))
        h1 { "Object " (v.id) " " (badge(standing.as_ref().map(|d| d.action.as_str()))) }
        div.object.item data-object-id=(v.id) tabindex="0" {
            figure {
                @if v.has_picture { img #picture src=(format!("/objects/{}/image", v.id)) alt="the object with its boxes"; }
                @else { p.help { "The picture is not kept by this server (posted scans are; scanned folders need --images)." } }
                figcaption.help { (if is_scan { "X-ray scan with the model's boxes" } else { "listing photo" }) }
            }
            div {
                h2 { "Decide" }
                div.actions { (decision_forms(r, v.id, v.cluster.len(), &v.here)) }
                @if is_scan {
                    h2 { "Fix or add boxes (pixels)" }
                    form #boxes method="post" action=(format!("/objects/{}/decide", v.id)) {
                        input type="hidden" name="csrf" value=(r.csrf);
                        input type="hidden" name="back" value=(v.here);
                        input type="hidden" name="action" value="confirm";
                        table {
                            tr { th { "label" } th { "x0" } th { "y0" } th { "x1" } th { "y1" } }
                            @for (i, b) in flagged.iter().filter_map(|d| d.bbox.map(|b| (d.label.clone(), b))).chain(std::iter::once((String::new(), [0.0; 4]))).enumerate() {
                                tr {
                                    td { input type="text" name=(format!("box{i}_label")) value=(b.0) size="10"; }
                                    @for (k, val) in ["x0", "y0", "x1", "y1"].iter().zip(b.1) {
                                        td { input type="number" step="any" min="0" name=(format!("box{i}_{k}")) value=(if b.0.is_empty() { String::new() } else { format!("{val:.0}") }) size="5"; }
                                    }
                                }
                            }
                        }
                        button type="submit" data-action="confirm-boxes" { "Confirm with these boxes" }
                    }
                }
                h2 { "Scores" }
                table #scores {
                    tr { th { "model" } th { "label" } th { "score" } th { "threshold" } }
                    @for (model, labels) in &rec.scores {
                        @for (label, score) in labels {
                            @let t = v.thresholds.get(&(model.clone(), label.clone()));
                            tr { td { (model) } td { (label) } td { @if t.is_some_and(|t| score >= t) { strong { (format!("{score:.3}")) } } @else { (format!("{score:.3}")) } } td { @if let Some(t) = t { (format!("{t:.3}")) } } }
                        }
                    }
                }
                @if !flagged.is_empty() {
                    h2 { "Flagged" }
                    ul { @for d in &flagged { li { (d.model) ": " (d.label) " " (format!("{:.3}", d.score)) @if let Some(b) = d.bbox { " box " (format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b[0], b[1], b[2], b[3])) } } } }
                }
                h2 { "Source" }
                table #meta {
                    tr { th { "kind" } td { (if is_scan { "X-ray scan" } else { "listing photo" }) } }
                    tr { th { "uri" } td { code { (rec.uri) } } }
                    @if let Some(s) = &rec.meta.seller_id { tr { th { "seller" } td { a href=(format!("/sellers/{}", super::encode(s))) { (s) } } } }
                    @if let Some(l) = &rec.meta.listing_id { tr { th { "listing" } td { (l) } } }
                    @if let Some(p) = &rec.meta.platform { tr { th { "platform" } td { (p) } } }
                    @if let (Some(w), Some(h)) = (rec.width, rec.height) { tr { th { "size" } td { (w) " × " (h) } } }
                    @if let Some(m) = &rec.meta.meta { tr { th { "metadata" } td { code { (m.to_string()) } } } }
                    tr { th { "bytes" } td { code { (rec.fingerprint.clone().unwrap_or_default()) } } }
                }
            }
        }
        h2 #cluster { "Same photo elsewhere" }
        @if v.same.is_empty() && v.cluster.is_empty() { p.help { "No other stored object shows this photo." } }
        div.same {
            @for s in &v.same {
                div data-same-object=(s.id) {
                    a href=(format!("/objects/{}", s.id)) { img src=(format!("/objects/{}/image?w=400", s.id)) alt=(format!("object {}", s.id)) loading="lazy"; }
                    div { "object " a href=(format!("/objects/{}", s.id)) { (s.id) } @if let Some(sel) = &s.seller { " · seller " a href=(format!("/sellers/{}", super::encode(sel))) { (sel) } } @if let Some(p) = &s.platform { " · " (p) } }
                    div.meta { code { (s.uri) } }
                    div.meta { "decided by " (s.evidence["decided_by"].as_str().unwrap_or("")) " · matched by " (s.evidence["matched_by"].as_str().unwrap_or("")) @if let Some(d) = s.evidence["pdq_distance"].as_u64() { " · PDQ distance " (d) } }
                    details { summary { "evidence" } code { (s.evidence["evidence"].to_string()) } }
                }
            }
        }
        @if !v.cluster.is_empty() {
            p #cluster-members { "In its cluster: " @for id in &v.cluster { a href=(format!("/objects/{id}")) data-member=(id) { "#" (id) } " " } }
        }
        h2 { "Decisions" }
        @if v.decisions.is_empty() { p.help { "None yet." } }
        @else {
            table #decisions {
                tr { th { "#" } th { "decision" } th { "reason / note" } th { "who" } th { "when" } th { "model at the time" } th {} }
                @for d in &v.decisions {
                    tr data-decision-id=(d.id) {
                        td { (d.id) }
                        td { (d.action) @if let Some(u) = d.undoes { " #" (u) } @if d.boxes.is_some() { " (boxes)" } }
                        td { (d.reason.clone().unwrap_or_default()) " " (d.note.clone().unwrap_or_default()) }
                        td { (d.who) }
                        td { (d.at) }
                        td { @if let (Some(m), Some(ver)) = (&d.model, &d.model_version) { (m) " " (ver) ": " (d.label.clone().unwrap_or_default()) " " (format!("{:.2}", d.score.unwrap_or(0.0))) " / " (format!("{:.2}", d.threshold.unwrap_or(0.0))) } }
                        td {
                            @if standing.as_ref().is_some_and(|s| s.id == d.id) {
                                form.inline method="post" action="/decisions/undo" {
                                    input type="hidden" name="csrf" value=(r.csrf);
                                    input type="hidden" name="ids" value=(d.id);
                                    input type="hidden" name="back" value=(v.here);
                                    button type="submit" data-action="undo-decision" { "Undo" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn links_table(links: &[(Link, bool)]) -> Markup {
    html! {
        table #links {
            tr { th { "seller" } th { "seller" } th { "shared photos" } th { "reviewed" } th { "example pair" } }
            @for (l, confirmed) in links {
                tr data-link=(format!("{}|{}", l.source, l.target)) data-confirmed=(confirmed) {
                    td { a href=(format!("/sellers/{}", super::encode(&l.source))) { (l.source) } }
                    td { a href=(format!("/sellers/{}", super::encode(&l.target))) { (l.target) } }
                    td { (l.weight) }
                    td { @if *confirmed { span.badge.confirm { "confirmed find" } } @else { span.badge.open { "unconfirmed" } } }
                    td { @if let Some((a, b)) = l.evidence.first() { code { (a) } " = " code { (b) } } }
                }
            }
        }
    }
}

/// One seller: its objects and links.
pub fn seller(r: &Reviewer, seller: &str, objects: &[(i64, String, Option<String>, Option<String>)], links: &[(Link, bool)]) -> Html<String> {
    layout(&format!("Seller {seller}"), Some(r), html! {
        h1 { "Seller " (seller) }
        h2 { "Linked sellers" }
        @if links.is_empty() { p.help { "No other seller posted the same photos." } } @else { (links_table(links)) }
        h2 { "Objects (" (objects.len()) ")" }
        table #objects {
            tr { th { "object" } th { "listing" } th { "platform" } th { "uri" } }
            @for (id, uri, listing, platform) in objects {
                tr { td { a href=(format!("/objects/{id}")) { "#" (id) } } td { (listing.clone().unwrap_or_default()) } td { (platform.clone().unwrap_or_default()) } td { code { (uri) } } }
            }
        }
    })
}

/// Every seller link, with exports.
pub fn network(r: &Reviewer, links: &[(Link, bool)]) -> Html<String> {
    let confirmed = links.iter().filter(|(_, c)| *c).count();
    layout("Seller network", Some(r), html! {
        h1 { "Seller network" }
        p { (links.len()) " links between sellers who posted the same photo (verified matches); " (confirmed) " with a confirmed find. "
            "Export: " a href="/network.csv" download { "CSV" } " · " a href="/network.graphml" download { "GraphML" } }
        (links_table(links))
    })
}
