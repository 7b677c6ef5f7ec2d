//! Streams of records for other tools: JSONL files and S3 part files (at least once: written
//! before the store commits). The store of record is [`crate::store`].

pub mod jsonl;
pub mod s3parts;

pub use jsonl::JsonlSink;
pub use s3parts::S3Parts;
