//! Prints tusk's hashes of image files, one tab-separated line each (`path phash dhash pdq
//! quality dihedral`, the last being the eight exact PDQ variants, comma-separated), for the hash benchmarks in `scripts/bench/`. Paths come as arguments or, with
//! none, one per line on stdin.

use std::io::{BufRead, Write};

use tusk::decode::{decode, DecodeLimits};
use tusk::hash::PerceptualHasher;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths: Vec<String> = if args.is_empty() {
        std::io::stdin().lock().lines().map_while(Result::ok).filter(|l| !l.is_empty()).collect()
    } else {
        args
    };
    let mut hasher = PerceptualHasher::new();
    let limits = DecodeLimits::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in paths {
        let line = match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| decode(&b, &limits).map_err(|e| e.to_string())) {
            Ok(d) => {
                let (h, variants) = hasher.hash_query(&d.rgb);
                let variants: Vec<String> = variants.iter().map(|v| v.to_hex()).collect();
                format!("{path}\t{:016x}\t{:016x}\t{}\t{}\t{}", h.phash, h.dhash, h.pdq.to_hex(), h.pdq_quality, variants.join(","))
            }
            Err(e) => format!("{path}\terror\t{e}"),
        };
        writeln!(out, "{line}").expect("stdout");
    }
}
