//! Hamming index speed (issue 6): N random hashes with planted near-duplicates; query latency
//! p50/p99 of the multi-index-hashing index against a plain linear scan in the same run, for
//! 64-bit hashes at radius 4, 8 and 12 and PDQ at radius 31; the index's memory and build time.
//! `cargo run --release --example index_bench [N]` (default 10,000,000); scripts/bench/index.sh.

use std::time::Instant;

use tusk::hash::pdq::Pdq;
use tusk::index::{HammingHash, HammingIndex};

mod common;

use common::{flip64, flip_pdq, Rng};

impl Rng {
    /// A mask of `bits` distinct bits set among the first `width`.
    fn mask(&mut self, bits: u32, width: u32) -> Vec<u32> {
        let mut set = Vec::new();
        while set.len() < bits as usize {
            let b = (self.next() % width as u64) as u32;
            if !set.contains(&b) {
                set.push(b);
            }
        }
        set
    }
}

/// `n` random hashes, the first `bases` of which get 4 copies each with 1..=`max_d` of their
/// `width` bits flipped (at the end); returns the hashes and the bases.
fn planted<H: Copy>(rng: &mut Rng, n: usize, bases: usize, max_d: u32, width: u32, random: impl Fn(&mut Rng) -> H, flip: impl Fn(H, &[u32]) -> H) -> (Vec<H>, Vec<H>) {
    let mut hashes: Vec<H> = (0..n - bases * 4).map(|_| random(rng)).collect();
    let originals: Vec<H> = hashes[..bases].to_vec();
    for b in &originals {
        for _ in 0..4 {
            let d = 1 + (rng.next() % max_d as u64) as u32;
            let m = rng.mask(d, width);
            hashes.push(flip(*b, &m));
        }
    }
    (hashes, originals)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Times `queries` against the index and the scan; checks both give the same answers.
fn measure<H: HammingHash>(label: &str, index: &HammingIndex<H>, queries: &[H], radius: u32, scans: usize) {
    let mut t_index = Vec::new();
    let mut found = 0usize;
    for q in queries {
        let t = Instant::now();
        let r = index.search(q, radius);
        t_index.push(t.elapsed().as_secs_f64() * 1e3);
        found += r.len();
    }
    let mut t_scan = Vec::new();
    for q in queries.iter().take(scans) {
        let t = Instant::now();
        let s = index.scan(q, radius);
        t_scan.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s, index.search(q, radius), "index and scan disagree");
    }
    let (i50, i99) = (percentile(&mut t_index, 0.5), percentile(&mut t_index, 0.99));
    let (s50, s99) = (percentile(&mut t_scan, 0.5), percentile(&mut t_scan, 0.99));
    println!(
        "| {label} | {radius} | {i50:.3} | {i99:.3} | {s50:.1} | {s99:.1} | {:.0}× | {:.1} |",
        s50 / i50,
        found as f64 / queries.len() as f64
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().expect("N")).unwrap_or(10_000_000);
    let planted_bases = 1_000;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    println!("{n} hashes per index, {planted_bases} of them with 4 planted near-duplicates each (distances 1–31 for PDQ, 1–12 for 64-bit)\n");
    println!("| hashes | radius | index p50 (ms) | index p99 (ms) | scan p50 (ms) | scan p99 (ms) | speed-up (p50) | results per query |");
    println!("|---|---|---|---|---|---|---|---|");

    let t = Instant::now();
    let (hashes, bases) = planted(&mut rng, n, planted_bases, 12, 64, |r| r.next(), flip64);
    let index = HammingIndex::build(hashes);
    let build64 = t.elapsed().as_secs_f64();
    let mem64 = index.memory_bytes();
    let queries: Vec<u64> = bases.iter().take(300).map(|b| flip64(*b, &rng.mask(2, 64))).collect();
    for radius in [4, 8, 12] {
        measure("64-bit", &index, &queries, radius, 60);
    }
    drop(index);

    let t = Instant::now();
    let (pdqs, bases) = planted(&mut rng, n, planted_bases, 31, 256, |r| Pdq([r.next(), r.next(), r.next(), r.next()]), flip_pdq);
    let index = HammingIndex::build(pdqs);
    let build_pdq = t.elapsed().as_secs_f64();
    let mem_pdq = index.memory_bytes();
    let queries: Vec<Pdq> = bases.iter().take(300).map(|b| flip_pdq(*b, &rng.mask(4, 256))).collect();
    measure("PDQ 256-bit", &index, &queries, 31, 30);
    println!();
    println!("index memory: 64-bit {:.0} MiB (hashes {:.0} MiB), PDQ {:.0} MiB (hashes {:.0} MiB)", mem64 as f64 / 1048576.0, (n * 8) as f64 / 1048576.0, mem_pdq as f64 / 1048576.0, (n * 32) as f64 / 1048576.0);
    println!("generate + build: 64-bit {build64:.1} s, PDQ {build_pdq:.1} s");
}
