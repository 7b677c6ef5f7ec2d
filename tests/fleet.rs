//! The fleet against real parts: PostgreSQL 15 (a fresh cluster per test) holds the store and
//! the queue, s3s-fs holds the objects, and `tusk enqueue` / `tusk worker` run as real
//! processes that are killed, stopped and cut off from their servers.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::pgserver::{psql, PgServer};
use common::s3server::{put_small_jpegs, S3Server};

const BUCKET: &str = "fleet";

/// A PostgreSQL store and an S3 server with `n` small real JPEGs under `in/`.
struct Fleet {
    pg: PgServer,
    s3: S3Server,
    url: String,
    log_dir: tempfile::TempDir,
}

impl Fleet {
    fn new(n: usize) -> Self {
        let pg = PgServer::start();
        let url = pg.new_database();
        let s3 = S3Server::start();
        put_small_jpegs(&s3, BUCKET, "in/", n);
        Fleet { pg, s3, url, log_dir: tempfile::tempdir().unwrap() }
    }

    /// A tusk command aimed at this fleet's servers.
    fn tusk(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tusk"));
        cmd.args(args).args(["--db", &self.url]).env("TUSK_LOG", "tusk=info,warn");
        S3Server::aim(&mut cmd, &self.s3.endpoint());
        cmd
    }

    fn enqueue(&self) -> String {
        common::succeeded(self.tusk(&["enqueue", &format!("s3://{BUCKET}/in/")]).output().unwrap(), "tusk enqueue")
    }

    /// Starts `tusk worker --name NAME extra…`, output to files in the log folder.
    fn worker(&self, name: &str, extra: &[&str]) -> Child {
        let out = std::fs::File::create(self.log_dir.path().join(format!("{name}.out"))).unwrap();
        let err = std::fs::OpenOptions::new().create(true).append(true).open(self.log_dir.path().join(format!("{name}.err"))).unwrap();
        self.tusk(&["worker", "--name", name, "--threads", "1"]).args(extra).stdout(out).stderr(err).spawn().unwrap()
    }

    fn output(&self, name: &str) -> (String, String) {
        let read = |ext: &str| std::fs::read_to_string(self.log_dir.path().join(format!("{name}.{ext}"))).unwrap_or_default();
        (read("out"), read("err"))
    }

    fn count(&self, sql: &str) -> i64 {
        psql(&self.url, sql).parse().unwrap_or_else(|_| panic!("{sql} is not a count"))
    }

    /// Waits until `sql` counts at least `n` (panics after `limit`).
    fn wait_for(&self, sql: &str, n: i64, limit: Duration) {
        let started = Instant::now();
        loop {
            if self.count(sql) >= n {
                return;
            }
            assert!(started.elapsed() < limit, "{sql} stayed under {n} for {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every job done, one object and one result per object, no failure.
    fn assert_exactly_once(&self, n: i64) {
        assert_eq!(self.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"), n);
        assert_eq!(self.count("SELECT COUNT(*) FROM jobs"), n, "enqueue added no duplicate jobs");
        assert_eq!(self.count("SELECT COUNT(*) FROM objects"), n);
        assert_eq!(self.count("SELECT COUNT(*) FROM results"), n, "one model, one result per object");
        assert_eq!(self.count("SELECT COUNT(DISTINCT object_id) FROM results"), n);
        assert_eq!(self.count("SELECT COUNT(*) FROM failures"), 0, "no failure record: {}", psql(&self.url, "SELECT uri, reason FROM failures LIMIT 5"));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

/// Waits for the process to exit (panics after `limit`); its exit status.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("worker still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 3 workers on 2,000 objects; every few seconds a random one is killed with SIGKILL and
/// started again. Every object ends done with exactly one result.
#[test]
fn killed_workers_lose_and_duplicate_nothing() {
    let n = 2000;
    let fleet = Fleet::new(n);
    let out = fleet.enqueue();
    assert!(out.contains(&format!("{n} new jobs")), "{out}");
    assert!(fleet.enqueue().contains("0 new jobs"), "enqueue is idempotent");
    let args = ["--batch", "16", "--lease", "3s", "--poll", "200ms"];
    let mut workers: Vec<Child> = (0..3).map(|i| fleet.worker(&format!("w{i}"), &args)).collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let started = Instant::now();
    let mut kills = 0;
    while fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") < n as i64 {
        assert!(started.elapsed() < Duration::from_secs(900), "not done after 15 minutes");
        std::thread::sleep(Duration::from_millis(2000 + 250 * next(8)));
        if fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") >= n as i64 {
            break;
        }
        let victim = next(3) as usize;
        workers[victim].kill().unwrap();
        workers[victim].wait().unwrap();
        kills += 1;
        workers[victim] = fleet.worker(&format!("w{victim}"), &args);
    }
    for w in &mut workers {
        signal(w, "-TERM");
        assert!(wait(w, Duration::from_secs(60)).success());
    }
    println!("{kills} workers killed in {:.0} s", started.elapsed().as_secs_f64());
    assert!(kills >= 3, "the test killed only {kills} workers");
    fleet.assert_exactly_once(n as i64);
    let taken_over = fleet.count("SELECT COUNT(*) FROM jobs WHERE attempts > 1");
    assert!(taken_over > 0, "no killed worker's jobs were claimed again: the kills missed every batch");
}

/// A worker stopped (SIGSTOP) past its lease loses its jobs to another; when it wakes, its
/// commit is refused and nothing it computed is written.
#[test]
fn a_stalled_worker_is_fenced() {
    let n = 200;
    let fleet = Fleet::new(n);
    fleet.enqueue();
    let mut stalled = fleet.worker("stalled", &["--batch", "200", "--lease", "2s"]);
    fleet.wait_for("SELECT COUNT(*) FROM jobs WHERE state = 'leased' AND lease_owner = 'stalled'", 1, Duration::from_secs(120));
    signal(&stalled, "-STOP");
    std::thread::sleep(Duration::from_secs(3));
    let mut other = fleet.worker("other", &["--batch", "50", "--until-empty"]);
    assert!(wait(&mut other, Duration::from_secs(300)).success(), "{:?}", fleet.output("other"));
    fleet.assert_exactly_once(n as i64);
    signal(&stalled, "-CONT");
    // It finishes its batch, tries to commit, and is refused.
    let started = Instant::now();
    while !fleet.output("stalled").1.contains("fenced off") {
        assert!(started.elapsed() < Duration::from_secs(120), "no fencing reported: {:?}", fleet.output("stalled"));
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&stalled, "-TERM");
    assert!(wait(&mut stalled, Duration::from_secs(60)).success());
    let (out, err) = fleet.output("stalled");
    assert!(out.contains("tusk worker: 0 stored, 0 retried, 200 fenced"), "{out}\n{err}");
    fleet.assert_exactly_once(n as i64);
    let by_stalled = fleet.count("SELECT COUNT(*) FROM objects o JOIN runs r ON r.id = o.run_id WHERE r.source = 'worker stalled'");
    assert_eq!(by_stalled, 0, "the fenced worker wrote objects");
}

/// PostgreSQL restarted mid-run: workers wait, reconnect and finish.
#[test]
fn workers_survive_a_database_restart() {
    let n = 400;
    let mut fleet = Fleet::new(n);
    fleet.enqueue();
    let args = ["--batch", "16", "--until-empty", "--lease", "5s"];
    let mut workers: Vec<Child> = (0..2).map(|i| fleet.worker(&format!("w{i}"), &args)).collect();
    fleet.wait_for("SELECT COUNT(*) FROM jobs WHERE state = 'done'", 48, Duration::from_secs(300));
    let done_before = fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'");
    fleet.pg.stop();
    std::thread::sleep(Duration::from_secs(3));
    fleet.pg.start_again();
    for (i, w) in workers.iter_mut().enumerate() {
        let status = wait(w, Duration::from_secs(600));
        assert!(status.success(), "worker {i}: {status:?} {:?}", fleet.output(&format!("w{i}")));
    }
    // The database went away mid-run (nothing can be completed while it is down).
    assert!(done_before < n as i64, "the work was finished before the restart");
    fleet.assert_exactly_once(n as i64);
}

/// The object store goes away for a few seconds: reads fail, their jobs wait and retry, and
/// everything is done in the end with no failure record.
#[test]
fn reads_retry_through_an_object_store_outage() {
    let n = 300;
    let mut fleet = Fleet::new(n);
    fleet.enqueue();
    let mut worker = fleet.worker("w", &["--batch", "16", "--until-empty", "--s3-attempts", "2", "--s3-timeout-secs", "2"]);
    fleet.wait_for("SELECT COUNT(*) FROM jobs WHERE state = 'done'", 32, Duration::from_secs(300));
    fleet.s3.stop();
    std::thread::sleep(Duration::from_secs(4));
    fleet.s3.start_again();
    assert!(wait(&mut worker, Duration::from_secs(600)).success(), "{:?}", fleet.output("w"));
    let (out, err) = fleet.output("w");
    let retried: u64 = out.split(" retried").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(retried > 0, "no read failed during the outage: {out}\n{err}");
    fleet.assert_exactly_once(n as i64);
}

/// SIGTERM: the batch in flight is finished and committed, nothing is left leased, exit 0; also
/// when it comes during start-up.
#[test]
fn sigterm_finishes_the_batch_in_flight() {
    let n = 300;
    let fleet = Fleet::new(n);
    fleet.enqueue();
    let mut worker = fleet.worker("w", &["--batch", "100", "--lease", "30s"]);
    fleet.wait_for("SELECT COUNT(*) FROM jobs WHERE state = 'leased'", 1, Duration::from_secs(120));
    signal(&worker, "-TERM");
    assert!(wait(&mut worker, Duration::from_secs(120)).success(), "{:?}", fleet.output("w"));
    let (out, _) = fleet.output("w");
    let stored: i64 = out.split(" stored").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(stored >= 100 && stored % 100 == 0, "whole batches only: {out}");
    assert_eq!(fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'leased'"), 0);
    assert_eq!(fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"), stored);
    assert_eq!(fleet.count("SELECT COUNT(*) FROM results"), stored);
    // SIGTERM while a worker is still starting (store, models): an orderly stop, exit 0.
    let mut early = fleet.worker("early", &["--batch", "100", "--lease", "30s"]);
    std::thread::sleep(Duration::from_millis(200));
    signal(&early, "-TERM");
    let status = wait(&mut early, Duration::from_secs(120));
    assert!(status.success(), "{status:?} {:?}", fleet.output("early"));
    assert_eq!(fleet.count("SELECT COUNT(*) FROM jobs WHERE state = 'leased'"), 0);
}

/// A worker's records are a scan's records: same objects, same scores.
#[test]
fn workers_score_like_a_scan() {
    let pg = PgServer::start();
    let url = pg.new_database();
    let images = common::demo_dir().join("images");
    let run = |args: &[&str]| common::succeeded(common::tusk(args), &format!("tusk {args:?}"));
    run(&["enqueue", images.to_str().unwrap(), "--db", &url]);
    run(&["worker", "--db", &url, "--until-empty", "--name", "w"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scan.db");
    common::scan_ok(&images, &db, &[]);
    let sql = "SELECT o.uri || ' ' || s.label, s.score FROM scores s JOIN objects o ON o.id = s.object_id ORDER BY 1";
    let from_scan: Vec<(String, f64)> = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { sqlx::query_as::<_, (String, f64)>(sql).fetch_all(&common::pool(&db).await).await.unwrap() })
    };
    let from_worker: Vec<(String, f64)> = psql(&url, sql)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('|').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert!(!from_scan.is_empty());
    assert_eq!(from_scan.len(), from_worker.len());
    for ((k1, v1), (k2, v2)) in from_scan.iter().zip(&from_worker) {
        assert_eq!(k1, k2);
        assert!((v1 - v2).abs() < 1e-4, "{k1}: scan {v1}, worker {v2}");
    }
}
