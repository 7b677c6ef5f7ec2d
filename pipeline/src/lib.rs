//! tusk: recognise wildlife products in listing photos and X-ray scans, hash the pictures, and
//! keep every result.
//!
//! Data flows one way: [`source`] → [`decode`] → [`infer`] → [`hash`] → [`sink`], joined by
//! [`pipeline`]'s bounded worker pool. The CLI (`src/main.rs`) only parses flags and calls in.

pub mod decode;
pub mod eval;
pub mod hash;
pub mod index;
pub mod overlay;
pub mod infer;
pub mod pipeline;
pub mod record;
pub mod reuse;
pub mod sink;
mod simd;
pub mod source;
