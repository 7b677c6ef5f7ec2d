//! Sinks: where records go. SQLite is the store of record (exactly once per object version and
//! model); JSONL is a stream for other tools (at least once: written before the store commits).

pub mod jsonl;
pub mod sqlite;

pub use jsonl::JsonlSink;
pub use sqlite::{Store, StoreError};
