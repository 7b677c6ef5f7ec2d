//! A fixed set of threads for the CPU-heavy stages (decode, hash, preprocess, inference) of
//! objects already in hand. Started once, by the thread that builds the [`Processor`]
//! (super::Processor), they keep that thread's scheduling priority: `tusk serve` lowers the
//! priority of its I/O threads (reading bodies, answering 503s) below them, so under overload
//! the work already accepted keeps the cores.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run CPU-bound jobs in the order given.
#[derive(Debug)]
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
}

/// A job that panicked: its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

impl CpuPool {
    /// Starts `size` threads named `tusk-cpu-N`; they end when the pool is dropped.
    pub fn new(size: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..size.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("tusk-cpu-{i}")).spawn(move || loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => break,
                }
            })?;
        }
        Ok(Self { jobs: tx })
    }

    /// Queues `f` for a pool thread at once; the returned future gives its result (a panic
    /// comes back as [`Panicked`]). Dropping the future does not cancel the job.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> impl std::future::Future<Output = Result<T, Panicked>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                Panicked(p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "a job panicked".into()))
            });
            let _ = tx.send(out);
        });
        let sent = self.jobs.send(job).is_ok();
        async move {
            if !sent {
                return Err(Panicked("the pool has stopped".into()));
            }
            rx.await.map_err(|_| Panicked("the pool dropped the job".into()))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_pool_threads_and_panics_come_back_as_errors() {
        let pool = CpuPool::new(2).unwrap();
        let name = pool.spawn(|| std::thread::current().name().map(str::to_string)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("tusk-cpu-")));
        let err = pool.spawn(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err.0, "boom");
        // The pool still works after a panic.
        assert_eq!(pool.spawn(|| 2 + 2).await.unwrap(), 4);
    }
}
