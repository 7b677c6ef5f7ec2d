//! Sinks: where records go. SQLite is the store of record (exactly once per object version and
//! model); JSONL files and S3 part files are streams for other tools (at least once: written
//! before the store commits).

pub mod jsonl;
pub mod s3parts;
pub mod sqlite;

pub use jsonl::JsonlSink;
pub use s3parts::S3Parts;
pub use sqlite::{Store, StoreError};
