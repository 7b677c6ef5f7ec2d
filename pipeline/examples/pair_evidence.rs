//! Prints every verified match of a store with its evidence, one CSV line per pair, to audit
//! the verification rules against a labelled catalogue (scripts/bench/link_robustness.sh's
//! store): which pairs pass on how many inliers, at what coverage and density.
//! `cargo run --release --example pair_evidence -- DB > pairs.csv`

use tusk::reuse::verify::Params;
use tusk::reuse::{verified_pairs, Catalog, HashKind, Rule};
use tusk::store::{Db, Store};

#[tokio::main]
async fn main() {
    let db: Db = std::env::args().nth(1).expect("usage: pair_evidence DB").parse().expect("DB");
    let store = Store::open(&db).await.expect("store");
    let catalog = Catalog::load(&store).await.expect("catalog");
    let pairs = verified_pairs(&catalog, &store, &Rule::new(HashKind::Default, None), &Params::default()).await.expect("pairs");
    println!("a,b,decided_by,inliers,matches,coverage,density,scale,rotation_deg,mirrored");
    for (a, b, m) in pairs {
        let (ua, ub) = (&catalog.entries[a].uri, &catalog.entries[b].uri);
        match m.evidence {
            Some(e) => println!("{ua},{ub},{:?},{},{},{:.3},{:.3},{:.3},{:.1},{}", m.decided_by, e.inliers, e.matches, e.coverage, e.density, e.scale, e.rotation_deg, e.mirrored),
            None => println!("{ua},{ub},{:?},,,,,,,", m.decided_by),
        }
    }
}
