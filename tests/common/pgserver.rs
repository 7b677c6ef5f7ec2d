//! A real PostgreSQL 15 for tests (Debian's package, installed by scripts/setup-postgres.sh):
//! a fresh cluster in a temporary folder on a free loopback port, one database per test, and
//! stop/start for outage tests. `initdb` refuses root, so as root the cluster belongs to the
//! `postgres` user and its commands run through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running PostgreSQL cluster.
pub struct PgServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn bin(tool: &str) -> PathBuf {
    let dir = std::env::var_os("TUSK_PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    let path = dir.join(tool);
    assert!(path.is_file(), "{} not found: run scripts/setup-postgres.sh (scripts/test.sh does it for you)", path.display());
    path
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a PostgreSQL tool as the cluster's owner.
fn run_pg(tool: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(tool));
        c
    } else {
        Command::new(bin(tool))
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

impl PgServer {
    /// Makes a new cluster (trust authentication, superuser `postgres`) and starts it.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("tusk-pg-").tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown the data folder to postgres");
        }
        let data = dir.path().join("data");
        let out = run_pg("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = PgServer { port, dir, running: false };
        s.start_again();
        s
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the (stopped) cluster again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(!self.running);
        let data = self.data();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let started = Instant::now();
        loop {
            let out = run_pg("pg_ctl", &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"]);
            if out.status.success() {
                break;
            }
            // The port of a server just killed can take a moment to free.
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        self.running = true;
    }

    /// Stops the cluster at once (`immediate`: like a crash, clients are cut off).
    pub fn stop(&mut self) {
        if self.running {
            let _ = run_pg("pg_ctl", &["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    /// A url of the cluster's `postgres` database.
    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates an empty database and returns its url.
    pub fn new_database(&self) -> String {
        let name = format!("tusk_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(bin("psql"))
            .args([&self.admin_url(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "CREATE DATABASE failed: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The data folder's parent (kept for the lifetime of the server).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one SQL statement through psql and returns its unaligned output (tests' assertions).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(bin("psql")).args([url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
