//! One conformance suite for every store (object_store's pattern): each case runs against
//! SQLite (a temporary file) and against a real PostgreSQL 15 (a fresh cluster on a free
//! loopback port, tests/common/pgserver.rs). A backend passes when it answers every case the
//! same way.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use common::pgserver::PgServer;
use tusk::infer::{manifest, ModelManifest};
use tusk::record::{Detection, Failure, Hashes, Record, Stage};
use tusk::reuse::features::FeatureExtractor;
use tusk::source::{Kind, ObjectMeta};
use tusk::store::{Db, DecisionFilter, NewDecision, QueueFilter, QueueOrder, RunCounts, RunStatus, Store};

/// The real manifests of the committed models (the store keys results by them).
fn manifests() -> Vec<ModelManifest> {
    manifest::discover(&common::models_dir()).unwrap()
}

/// Registers a run of every model; model ids by name.
async fn begin(store: &Store) -> (i64, BTreeMap<String, i64>) {
    let m = manifests();
    let (run, ids) = store.begin_run("conformance", &m).await.unwrap();
    (run, m.iter().map(|m| m.name.clone()).zip(ids).collect())
}

fn hashes(seed: u64) -> Hashes {
    let mix = |k: u64| (seed ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Hashes { phash: mix(1), dhash: mix(2), pdq: tusk::hash::pdq::Pdq([mix(3), mix(4), mix(5), mix(6)]), pdq_quality: 80 }
}

/// A listing photo's record with one score per label of `model` and (optionally) a box.
fn result(uri: &str, fingerprint: &str, seller: &str, model: &str, score: f32, seed: u64) -> Record {
    let meta = ObjectMeta { kind: Kind::Listing, seller_id: Some(seller.into()), listing_id: Some(format!("l-{uri}")), ..Default::default() };
    let mut r = Record::new(uri.into(), Some(fingerprint.into()), meta);
    r.width = Some(640);
    r.height = Some(480);
    r.hashes = Some(hashes(seed));
    r.scores.insert(model.into(), BTreeMap::from([("ivory".to_string(), score), ("other".to_string(), 1.0 - score)]));
    r.detections.push(Detection { model: model.into(), label: "ivory".into(), score, bbox: Some([1.0, 2.0, 30.0, 40.0]), flagged: true });
    r
}

fn failure(uri: &str, fingerprint: &str, stage: Stage, reason: &str) -> Record {
    Record::failed(uri.into(), Some(fingerprint.into()), ObjectMeta::default(), Failure { stage, reason: reason.into(), message: format!("{reason} (test)") })
}

/// A committed model's version and sha256, which `scores` and `boxes` are asked by.
fn model_version(name: &str) -> (String, String) {
    let m = manifests().into_iter().find(|m| m.name == name).unwrap();
    (m.version, m.sha256.to_ascii_lowercase())
}

/// Same manifests → same model ids in every run; runs get new ids and can be finished.
async fn runs_and_models(store: Store) {
    let (run1, ids1) = begin(&store).await;
    let (run2, ids2) = begin(&store).await;
    assert_ne!(run1, run2);
    assert_eq!(ids1, ids2);
    assert_eq!(ids1.len(), manifests().len());
    store.finish_run(run1, RunStatus::Done, RunCounts { processed: 3, skipped: 1, failed: 0 }).await.unwrap();
    store.finish_run(run2, RunStatus::Interrupted, RunCounts::default()).await.unwrap();
}

/// One result per object version and model: a rewrite replaces, new bytes replace old results.
async fn results_are_idempotent_per_version(store: Store) {
    let (run, ids) = begin(&store).await;
    let model = "listing-v1";
    let id = ids[model];
    assert!(!store.is_done("a.jpg", "fp1", &[id]).await.unwrap());
    let r = result("a.jpg", "fp1", "ana", model, 0.75, 1);
    store.write(run, std::slice::from_ref(&r), &ids).await.unwrap();
    store.write(run, &[r], &ids).await.unwrap();
    assert!(store.is_done("a.jpg", "fp1", &[id]).await.unwrap());
    assert!(!store.is_done("a.jpg", "fp2", &[id]).await.unwrap(), "other bytes are not done");
    assert!(!store.is_done("a.jpg", "fp1", &[id, ids["xray-v1"]]).await.unwrap(), "a model without a result is not done");
    let (version, sha) = model_version(model);
    let scores = store.scores(model, &version, &sha).await.unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores["a.jpg"]["ivory"], 0.75);
    let boxes = store.boxes(model, &version, &sha).await.unwrap();
    assert_eq!(boxes["a.jpg"], vec![("ivory".to_string(), 0.75, [1.0, 2.0, 30.0, 40.0])], "one box, not two");

    // The file changed: the new bytes' result replaces the old one.
    store.write(run, &[result("a.jpg", "fp2", "ana", model, 0.25, 2)], &ids).await.unwrap();
    assert!(store.is_done("a.jpg", "fp2", &[id]).await.unwrap());
    assert!(!store.is_done("a.jpg", "fp1", &[id]).await.unwrap());
    let scores = store.scores(model, &version, &sha).await.unwrap();
    assert_eq!(scores["a.jpg"]["ivory"], 0.25);
    assert_eq!(store.boxes(model, &version, &sha).await.unwrap()["a.jpg"].len(), 1);
    let (rows, _) = store.objects_since("").await.unwrap();
    assert_eq!(rows.len(), 1);
    let h = hashes(2);
    assert_eq!((rows[0].phash.as_str(), rows[0].pdq.as_deref()), (format!("{:016x}", h.phash).as_str(), Some(h.pdq.to_hex().as_str())));
    assert_eq!(rows[0].seller_id.as_deref(), Some("ana"));
}

/// A permanent failure (decode) makes those bytes done; a retryable one (read) does not; a
/// later success clears the failure.
async fn failures_and_retries(store: Store) {
    let (run, ids) = begin(&store).await;
    let id = ids["listing-v1"];
    store
        .write(run, &[failure("bad.jpg", "fpb", Stage::Decode, "truncated"), failure("gone.jpg", "fpg", Stage::Read, "unavailable")], &ids)
        .await
        .unwrap();
    assert!(store.is_done("bad.jpg", "fpb", &[id]).await.unwrap(), "the same broken bytes fail again");
    assert!(!store.is_done("bad.jpg", "fpb2", &[id]).await.unwrap(), "new bytes are tried");
    assert!(!store.is_done("gone.jpg", "fpg", &[id]).await.unwrap(), "a read failure is retried");
    let f = store.failures().await.unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f["bad.jpg"], "decode/truncated");
    assert_eq!(f["gone.jpg"], "read/unavailable");
    // A second failure of the same uri is one record, not two.
    store.write(run, &[failure("gone.jpg", "fpg", Stage::Read, "timeout")], &ids).await.unwrap();
    assert_eq!(store.failures().await.unwrap()["gone.jpg"], "read/timeout");
    store.write(run, &[result("gone.jpg", "fpg", "bo", "listing-v1", 0.5, 3)], &ids).await.unwrap();
    let f = store.failures().await.unwrap();
    assert_eq!(f.len(), 1, "the success cleared the failure: {f:?}");
    assert!(store.is_done("gone.jpg", "fpg", &[id]).await.unwrap());
}

/// Local features come back byte for byte, for the object's current bytes only.
async fn features_round_trip(store: Store) {
    let (run, ids) = begin(&store).await;
    let img = image::open(common::demo_dir().join("images/met_ivory_41975.jpg")).unwrap().to_rgb8();
    let features = FeatureExtractor::new().unwrap().extract(&img).unwrap();
    let mut r = result("f.jpg", "fp1", "ana", "listing-v1", 0.5, 4);
    r.features = Some(Arc::new(features.clone()));
    store.write(run, &[r, result("plain.jpg", "fp1", "bo", "listing-v1", 0.5, 5)], &ids).await.unwrap();
    let (rows, _) = store.objects_since("").await.unwrap();
    let id_of = |uri: &str| rows.iter().find(|o| o.uri == uri).unwrap().id;
    let got = store.features(&[id_of("f.jpg"), id_of("plain.jpg"), -1]).await.unwrap();
    assert_eq!(got.len(), 1, "only the object with features");
    assert_eq!(got[&id_of("f.jpg")], features.to_bytes());
    // New bytes without features: the old features describe nothing any more.
    store.write(run, &[result("f.jpg", "fp2", "ana", "listing-v1", 0.5, 6)], &ids).await.unwrap();
    assert!(store.features(&[id_of("f.jpg")]).await.unwrap().is_empty());
}

/// The catalog's cursor: every object written after a read comes in the next read.
async fn cursor_misses_nothing(store: Store) {
    let (run, ids) = begin(&store).await;
    let batch = |from: u64, n: u64| (from..from + n).map(|i| result(&format!("c{i}.jpg"), "fp", "s", "listing-v1", 0.5, i)).collect::<Vec<_>>();
    store.write(run, &batch(0, 5), &ids).await.unwrap();
    let (first, cursor) = store.objects_since("").await.unwrap();
    assert_eq!(first.len(), 5);
    let (again, cursor) = store.objects_since(&cursor).await.unwrap();
    assert!(again.len() <= 5, "nothing new, at most the overlap");
    store.write(run, &batch(5, 7), &ids).await.unwrap();
    let (next, _) = store.objects_since(&cursor).await.unwrap();
    for i in 5..12 {
        assert!(next.iter().any(|o| o.uri == format!("c{i}.jpg")), "c{i}.jpg missed after the cursor");
    }
}

/// Writers racing on the same objects leave exactly one object and one result each.
async fn concurrent_writers_leave_one_result(store: Store) {
    let (run, ids) = begin(&store).await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (store, ids) = (store.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            // Each writer takes the objects in its own order.
            let mut uris: Vec<u64> = (0..40).collect();
            uris.rotate_left((w * 10) as usize);
            for chunk in uris.chunks(8) {
                let records: Vec<Record> = chunk.iter().map(|i| result(&format!("o{i}.jpg"), "fp", "s", "listing-v1", 0.1 * w as f32, *i)).collect();
                store.write(run, &records, &ids).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (rows, _) = store.objects_since("").await.unwrap();
    assert_eq!(rows.len(), 40);
    let (version, sha) = model_version("listing-v1");
    let scores = store.scores("listing-v1", &version, &sha).await.unwrap();
    assert_eq!(scores.len(), 40);
    let boxes = store.boxes("listing-v1", &version, &sha).await.unwrap();
    assert!(boxes.values().all(|b| b.len() == 1), "one box per object, not one per writer");
}

/// A stored object reads back as the record that was written (scores, flagged boxes, hashes).
async fn records_read_back(store: Store) {
    let (run, ids) = begin(&store).await;
    let mut r = result("r.jpg", "fp1", "ana", "listing-v1", 0.75, 7);
    r.meta.meta = Some(serde_json::json!({"station": "gate-3"}));
    store.write(run, std::slice::from_ref(&r), &ids).await.unwrap();
    let id = store.object_id("r.jpg").await.unwrap().expect("stored");
    assert_eq!(store.object_id("nope.jpg").await.unwrap(), None);
    let back = store.record(id).await.unwrap().unwrap();
    assert_eq!((back.uri.as_str(), back.fingerprint.as_deref(), back.width, back.height), ("r.jpg", Some("fp1"), Some(640), Some(480)));
    assert_eq!(back.meta, r.meta);
    assert_eq!(back.hashes, r.hashes);
    assert_eq!(back.scores, r.scores);
    assert_eq!(back.detections, r.detections);
    assert_eq!(back.to_json_line(), r.to_json_line(), "the same JSON as the scan wrote");
    assert!(store.record(id + 1000).await.unwrap().is_none());
}

/// Tokens: names unique, only hashes kept, revocation sticks.
async fn tokens_are_kept_by_hash(store: Store) {
    assert!(store.add_token("gate-3", "station", &"a".repeat(64)).await.unwrap());
    assert!(!store.add_token("gate-3", "analyst", &"b".repeat(64)).await.unwrap(), "names are unique");
    assert!(store.add_token("crawler-1", "crawler", &"c".repeat(64)).await.unwrap());
    let t = store.tokens().await.unwrap();
    assert_eq!(t.iter().map(|t| (t.name.as_str(), t.role.as_str(), t.revoked)).collect::<Vec<_>>(), [("gate-3", "station", false), ("crawler-1", "crawler", false)]);
    assert_eq!(t[0].sha256, "a".repeat(64));
    assert!(store.revoke_token("gate-3").await.unwrap());
    assert!(!store.revoke_token("gate-3").await.unwrap(), "already revoked");
    assert!(!store.revoke_token("nobody").await.unwrap());
    assert!(store.tokens().await.unwrap()[0].revoked);
}

/// Decisions are appended with what the reviewer saw, undo takes back exactly one standing
/// decision, and the review queue lists flagged current objects, filtered and ordered.
async fn decisions_and_review_queue(store: Store) {
    let (run, ids) = begin(&store).await;
    let (version, _) = model_version("listing-v1");
    // ivory's threshold in listing-v1 is 0.2652: b (0.30) is nearest it, a (0.95) farthest.
    let mut a = result("a.jpg", "1", "s1", "listing-v1", 0.95, 1);
    a.meta.platform = Some("shop".into());
    let b = result("b.jpg", "1", "s2", "listing-v1", 0.30, 2);
    let mut quiet = result("quiet.jpg", "1", "s3", "listing-v1", 0.1, 3);
    quiet.detections.clear();
    store.write(run, &[a, b, quiet], &ids).await.unwrap();
    let id = |uri: &'static str| {
        let store = store.clone();
        async move { store.object_id(uri).await.unwrap().unwrap() }
    };
    let (a, b, quiet) = (id("a.jpg").await, id("b.jpg").await, id("quiet.jpg").await);
    let queue = |f: QueueFilter| {
        let store = store.clone();
        async move { store.review_queue(&QueueFilter { limit: 50, ..f }).await.unwrap().iter().map(|r| r.object_id).collect::<Vec<_>>() }
    };
    assert_eq!(queue(QueueFilter::default()).await, [b, a], "flagged only, newest first");
    assert_eq!(queue(QueueFilter { order: QueueOrder::Uncertain, ..Default::default() }).await, [b, a]);
    assert_eq!(queue(QueueFilter { platform: Some("shop".into()), ..Default::default() }).await, [a]);
    assert_eq!(queue(QueueFilter { seller: Some("s2".into()), ..Default::default() }).await, [b]);
    assert_eq!(queue(QueueFilter { label: Some("pangolin_scales".into()), ..Default::default() }).await, Vec::<i64>::new());
    assert_eq!(queue(QueueFilter { model_version: Some(version.clone()), kind: Some("listing".into()), ..Default::default() }).await, [b, a]);
    let row = &store.review_queue(&QueueFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap()[0];
    assert_eq!((row.object_id, row.label.as_str(), row.model.as_str(), row.threshold), (a, "ivory", "listing-v1", Some(0.2652)));
    assert!((row.score - 0.95).abs() < 1e-6 && row.decision.is_none());

    let decide = |object_id: i64, action: &str, undoes: Option<i64>| NewDecision {
        object_id,
        action: action.into(),
        reason: (action == "reject").then(|| "resin".to_string()),
        note: Some("seen".into()),
        boxes: None,
        undoes,
        who: "ana".into(),
    };
    let confirm = store.add_decision(&decide(a, "confirm", None)).await.unwrap().unwrap();
    assert_eq!((confirm.model.as_deref(), confirm.model_version.as_deref(), confirm.label.as_deref()), (Some("listing-v1"), Some(version.as_str()), Some("ivory")));
    assert_eq!((confirm.threshold, confirm.who.as_str(), confirm.fingerprint.as_str()), (Some(0.2652), "ana", "1"));
    assert!((confirm.score.unwrap() - 0.95).abs() < 1e-6 && !confirm.at.is_empty());
    let reject = store.add_decision(&decide(b, "reject", None)).await.unwrap().unwrap();
    assert_eq!(reject.reason.as_deref(), Some("resin"));
    assert_eq!(queue(QueueFilter { decided: Some(true), ..Default::default() }).await, [b, a]);
    assert_eq!(queue(QueueFilter { decided: Some(false), ..Default::default() }).await, Vec::<i64>::new());
    // Undo b's reject: b is undecided again; the same undo twice, or of another object's, is refused.
    let undo = store.add_decision(&decide(b, "undo", Some(reject.id))).await.unwrap().unwrap();
    assert_eq!(undo.undoes, Some(reject.id));
    assert!(store.add_decision(&decide(b, "undo", Some(reject.id))).await.unwrap().is_none(), "already undone");
    assert!(store.add_decision(&decide(b, "undo", Some(confirm.id))).await.unwrap().is_none(), "not b's decision");
    assert!(store.add_decision(&decide(quiet + 1000, "confirm", None)).await.unwrap().is_none(), "no such object");
    assert_eq!(queue(QueueFilter { decided: Some(false), ..Default::default() }).await, [b]);
    assert_eq!(queue(QueueFilter { decided: Some(false), order: QueueOrder::Uncertain, ..Default::default() }).await, [b]);
    assert_eq!(queue(QueueFilter { decided: Some(true), order: QueueOrder::Uncertain, label: Some("ivory".into()), ..Default::default() }).await, [a]);
    assert_eq!(queue(QueueFilter { order: QueueOrder::Uncertain, seller: Some("s1".into()), model_version: Some(version.clone()), ..Default::default() }).await, [a]);
    // A later decision stands over an earlier one; undoing it brings the earlier back.
    let second = store.add_decision(&decide(a, "reject", None)).await.unwrap().unwrap();
    assert_eq!(store.review_queue(&QueueFilter { limit: 5, seller: Some("s1".into()), ..Default::default() }).await.unwrap()[0].decision.as_deref(), Some("reject"));
    store.add_decision(&decide(a, "undo", Some(second.id))).await.unwrap().unwrap();
    assert_eq!(store.review_queue(&QueueFilter { limit: 5, seller: Some("s1".into()), ..Default::default() }).await.unwrap()[0].decision.as_deref(), Some("confirm"));
    // Append-only, oldest first, filterable; the standing decisions agree with the queue.
    let all = store.decisions(&DecisionFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|d| d.action.as_str()).collect::<Vec<_>>(), ["confirm", "reject", "undo", "reject", "undo"]);
    assert_eq!(store.decisions(&DecisionFilter { object_id: Some(b), ..Default::default() }).await.unwrap().len(), 2);
    assert_eq!(store.decisions(&DecisionFilter { after: Some(all[2].id), limit: Some(1), ..Default::default() }).await.unwrap(), [all[3].clone()]);
    let standing = tusk::store::review::standing(&all);
    assert_eq!(standing.iter().map(|(o, d)| (*o, d.action.as_str())).collect::<Vec<_>>(), [(a, "confirm")]);
    // New bytes of an object: the old decision is about other bytes and no longer stands.
    let mut a2 = result("a.jpg", "2", "s1", "listing-v1", 0.9, 4);
    a2.meta.platform = Some("shop".into());
    store.write(run, &[a2], &ids).await.unwrap();
    assert_eq!(queue(QueueFilter { decided: Some(true), ..Default::default() }).await, Vec::<i64>::new());
}

fn block_on<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap().block_on(f)
}

fn on_sqlite<F: Future<Output = ()>>(case: impl FnOnce(Store) -> F) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("tusk.db"));
    block_on(async move { case(Store::open(&db).await.unwrap()).await });
}

fn on_postgres<F: Future<Output = ()>>(case: impl FnOnce(Store) -> F) {
    let server = PgServer::start();
    let db: Db = server.new_database().parse().unwrap();
    block_on(async move { case(Store::open(&db).await.unwrap()).await });
    drop(server);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::on_sqlite(super::$case) } )*
        }
        mod postgres {
            $( #[test] fn $case() { super::on_postgres(super::$case) } )*
        }
    };
}

conformance!(
    runs_and_models,
    results_are_idempotent_per_version,
    failures_and_retries,
    features_round_trip,
    cursor_misses_nothing,
    concurrent_writers_leave_one_result,
    records_read_back,
    tokens_are_kept_by_hash,
    decisions_and_review_queue,
);

/// `--db` takes a postgres url end to end: the demo scan, a rerun that does nothing, and the
/// same `tusk match` and `tusk links` answers as tests/reuse.rs gets from SQLite.
#[test]
fn demo_scan_match_and_links_on_postgres() {
    let server = PgServer::start();
    let url = server.new_database();
    let run = |args: &[&str]| common::succeeded(common::tusk(args), &format!("tusk {args:?}"));
    let manifest = common::demo_dir().join("manifest.jsonl");
    let first = run(&["scan", manifest.to_str().unwrap(), "--db", &url, "--hash-only"]);
    let n: usize = common::pgserver::psql(&url, "SELECT COUNT(*) FROM objects").parse().unwrap();
    assert!(n >= 10, "{first}");
    let again = run(&["scan", manifest.to_str().unwrap(), "--db", &url, "--hash-only"]);
    assert!(again.contains("tusk scan: 0 processed"), "a rerun does nothing again: {again}");
    assert_eq!(common::pgserver::psql(&url, "SELECT COUNT(*) FROM objects").parse::<usize>().unwrap(), n);
    let found: serde_json::Value = serde_json::from_str(&run(&["match", "--seller", "seller-zed", "--db", &url, "--json"])).unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["uri"], "images/met_ivory_41975.jpg");
    assert_eq!(found[0]["seller_id"], "seller-ana");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("links.csv");
    run(&["links", "--db", &url, "--out", out.to_str().unwrap()]);
    let csv = std::fs::read_to_string(out).unwrap();
    assert_eq!(csv.lines().skip(1).collect::<Vec<_>>(), ["seller-ana,seller-zed,1,images/met_ivory_41975.jpg = images/reposted_ivory_41975.jpg"]);
}
