//! tusk: recognise wildlife products in listing photos and X-ray scans, hash the pictures, and
//! keep every result.
//!
//! Data flows one way: [`source`] → [`decode`] → [`infer`] → [`hash`] → [`store`] (the store of
//! record, SQLite or PostgreSQL behind one trait) and [`sink`] (JSONL and part-file streams),
//! joined by [`pipeline`]'s bounded stages. The CLI (`src/main.rs`) only parses flags and calls in.

pub mod decode;
pub mod dicos;
pub mod eval;
pub mod fleet;
pub mod hash;
pub mod index;
pub mod overlay;
pub mod infer;
pub mod pipeline;
pub mod record;
pub mod reuse;
pub mod reviewed;
pub mod serve;
pub mod sink;
mod simd;
pub mod source;
pub mod store;
