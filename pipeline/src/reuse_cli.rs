//! `tusk match`, `tusk clusters`, `tusk links`: flags, loading the catalog, printing. The work
//! is in `tusk::reuse`: hashes propose candidates, local features (or, for plain photos, a
//! strict hash rule) decide.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, ValueEnum};
use tusk::decode::{decode, DecodeLimits};
use tusk::reuse::export::{write_links, Format};
use tusk::reuse::verify::Params;
use tusk::reuse::{self, links, Catalog, HashKind, Match, Query, Rule};
use tusk::store::{Db, Store};

/// Which hash decides a match.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashKindArg {
    /// PDQ (any rotation or mirror image) within the radius, or pHash within 10.
    Default,
    /// PDQ alone, any rotation or mirror image.
    Pdq,
    /// 64-bit pHash alone.
    Phash,
    /// 64-bit dHash alone.
    Dhash,
}

impl From<HashKindArg> for HashKind {
    fn from(k: HashKindArg) -> Self {
        match k {
            HashKindArg::Default => HashKind::Default,
            HashKindArg::Pdq => HashKind::Pdq,
            HashKindArg::Phash => HashKind::Phash,
            HashKindArg::Dhash => HashKind::Dhash,
        }
    }
}

/// Flags every reuse command shares.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Store written by `tusk scan`: a SQLite file or a `postgres://` url.
    #[arg(long, default_value = "tusk.db")]
    db: Db,
    /// Largest hash distance that makes a candidate, which local features then verify
    /// [default: 90 for PDQ (bits of 256), 10 for pHash, 9 for dHash].
    #[arg(long)]
    radius: Option<u32>,
    /// The hash that proposes candidates.
    #[arg(long, value_enum, default_value = "default")]
    hash_kind: HashKindArg,
}

impl CatalogArgs {
    fn rule(&self) -> Rule {
        Rule::new(self.hash_kind.into(), self.radius)
    }
}

/// `tusk match`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["image", "hash", "object", "seller"])))]
pub struct MatchArgs {
    /// An image file: which stored objects show this photo?
    image: Option<PathBuf>,
    /// A hash in hex: 64 digits PDQ, 16 digits pHash (or dHash with --hash-kind dhash).
    #[arg(long)]
    hash: Option<String>,
    /// A stored object's uri: who else posted it?
    #[arg(long)]
    object: Option<String>,
    /// A seller id: the photos of every other seller that match any of this seller's photos.
    #[arg(long)]
    seller: Option<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print JSON (one array of matches).
    #[arg(long)]
    json: bool,
    /// Also show the candidates that were rejected, and every match's evidence (hash distances
    /// per view, keypoint matches, inliers, scale, rotation, coverage).
    #[arg(long)]
    explain: bool,
}

/// `tusk clusters`.
#[derive(Debug, Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Only groups spanning at least this many sellers.
    #[arg(long, default_value_t = 2)]
    min_sellers: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `tusk links`.
#[derive(Debug, Args)]
pub struct LinksArgs {
    /// Output file; its extension picks the format: .csv, .graphml or .json.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    catalog: CatalogArgs,
}

/// The store and its catalog, with the runtime that reads them.
struct Loaded {
    rt: tokio::runtime::Runtime,
    store: Store,
    catalog: Catalog,
}

/// Opens the store (which must exist) and loads the catalog; errors are one line, exit 2.
fn load(db: &Db) -> Result<Loaded, ExitCode> {
    if !db.exists() {
        eprintln!("error: no store at {db}: run `tusk scan` first (or pass --db)");
        return Err(ExitCode::from(2));
    }
    let rt = crate::runtime()?;
    let (store, catalog) = rt
        .block_on(async {
            let store = Store::open(db).await?;
            let catalog = Catalog::load(&store).await?;
            Ok::<_, tusk::store::StoreError>((store, catalog))
        })
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
    Ok(Loaded { rt, store, catalog })
}


/// One line of text for a match (or, with --explain, a rejected candidate).
fn match_text(catalog: &Catalog, m: &Match, explain: bool) -> String {
    let e = &catalog.entries[m.entry];
    let d = |v: Option<u32>| v.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
    let verdict = match (m.matched, m.decided_by) {
        (true, reuse::DecidedBy::Features) => "verified",
        (true, _) => "strict-hash",
        (false, _) => "rejected",
    };
    let mut line = format!(
        "  {verdict:<11} pdq {:>3}  phash {:>2}  {}  seller={} listing={} platform={}",
        d(m.pdq_distance),
        d(m.phash_distance),
        e.uri,
        e.seller_id.as_deref().unwrap_or("-"),
        e.listing_id.as_deref().unwrap_or("-"),
        e.platform.as_deref().unwrap_or("-"),
    );
    if explain {
        line.push_str(&format!("\n      candidate by {} ({}); whole-picture pdq {}", m.matched_by, m.views, d(m.whole_pdq_distance)));
        if let Some(v) = m.feature_votes {
            line.push_str(&format!("; {v} descriptors shared"));
        }
        match &m.evidence {
            Some(ev) => line.push_str(&format!(
                "; features: {} mutual matches, {} inliers, scale {:.2}, rotation {:.0}°, coverage {:.2}, density {:.2}{}",
                ev.matches,
                ev.inliers,
                ev.scale,
                ev.rotation_deg,
                ev.coverage,
                ev.density,
                if ev.mirrored { ", mirrored" } else { "" }
            )),
            None => line.push_str(&format!("; too few keypoints: strict rule pdq ≤ {}", reuse::STRICT_PDQ_RADIUS)),
        }
        if m.low_quality {
            line.push_str("; low-quality PDQ");
        }
    }
    line.push('\n');
    line
}

/// Runs `tusk match`.
pub fn run_match(args: MatchArgs) -> ExitCode {
    let kind: HashKind = args.catalog.hash_kind.into();
    // Parse what can be parsed before loading the store.
    let mut queries: Vec<(String, Query)> = Vec::new();
    if let Some(hex) = &args.hash {
        match Query::from_hex(hex, kind) {
            Ok(q) => queries.push((hex.clone(), q)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = &args.image {
        let decoded = std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| decode(&b, &DecodeLimits::default()).map_err(|e| e.to_string()));
        match decoded {
            Ok(d) => queries.push((path.display().to_string(), reuse::query_from_image(&d.rgb))),
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let Loaded { rt, store, catalog } = match load(&args.catalog.db) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Positions never reported for a query: the object itself, or the seller's own photos.
    let mut own: Vec<usize> = Vec::new();
    let mut stored_queries: Vec<usize> = Vec::new();
    if let Some(uri) = &args.object {
        let found = catalog.by_uri(uri).or_else(|| {
            let abs = std::fs::canonicalize(uri).ok()?;
            catalog.by_uri(&abs.display().to_string())
        });
        let Some(pos) = found else {
            eprintln!("error: no object {uri:?} in {}", args.catalog.db);
            return ExitCode::from(2);
        };
        own.push(pos);
        stored_queries.push(pos);
    }
    if let Some(seller) = &args.seller {
        own = catalog.by_seller(seller);
        if own.is_empty() {
            eprintln!("error: no objects of seller {seller:?} in {}", args.catalog.db);
            return ExitCode::from(2);
        }
        stored_queries.extend(&own);
    }
    let rule = args.catalog.rule();
    let params = Params::default();
    let decided = rt.block_on(async {
        for &pos in &stored_queries {
            let mut q = Query::from_entry(&catalog.entries[pos]);
            q.features = reuse::entry_features(&catalog, &store, pos).await?;
            queries.push((catalog.entries[pos].uri.clone(), q));
        }
        let mut out = Vec::with_capacity(queries.len());
        for (name, q) in &queries {
            out.push((name.clone(), reuse::matches(&catalog, &store, q, &rule, &params).await?));
        }
        Ok::<_, tusk::store::StoreError>(out)
    });
    let decided = match decided {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    let mut text = String::new();
    for (name, found) in decided {
        let shown: Vec<&Match> = found.iter().filter(|m| !own.contains(&m.entry) && (m.matched || args.explain)).collect();
        let n = shown.iter().filter(|m| m.matched).count();
        if n == 0 && args.seller.is_some() && !args.explain {
            continue;
        }
        text.push_str(&format!("{name}: {n} match{}\n", if n == 1 { "" } else { "es" }));
        for m in shown {
            text.push_str(&match_text(&catalog, m, args.explain));
            rows.push(reuse::match_json(&catalog, &name, m));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else if text.is_empty() {
        println!("no matches");
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

/// Verified clusters of the store's catalog, or an error already printed.
fn verified_clusters(loaded: &Loaded, rule: &Rule, min_sellers: usize) -> Result<Vec<reuse::Cluster>, ExitCode> {
    loaded.rt.block_on(reuse::clusters(&loaded.catalog, &loaded.store, rule, min_sellers)).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// Runs `tusk clusters`.
pub fn run_clusters(args: ClustersArgs) -> ExitCode {
    let loaded = match load(&args.catalog.db) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let clusters = match verified_clusters(&loaded, &args.catalog.rule(), args.min_sellers) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let catalog = &loaded.catalog;
    if args.json {
        let v: Vec<serde_json::Value> = clusters
            .iter()
            .map(|c| reuse::cluster_json(catalog, c))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if clusters.is_empty() {
        println!("no photo appears under {} or more sellers", args.min_sellers);
    }
    for (i, c) in clusters.iter().enumerate() {
        println!("cluster {}: {} objects, {} sellers ({})", i + 1, c.members.len(), c.sellers.len(), c.sellers.join(", "));
        for &p in &c.members {
            let e = &catalog.entries[p];
            println!("  {}  seller={} listing={} platform={}", e.uri, e.seller_id.as_deref().unwrap_or("-"), e.listing_id.as_deref().unwrap_or("-"), e.platform.as_deref().unwrap_or("-"));
        }
    }
    ExitCode::SUCCESS
}

/// Runs `tusk links`.
pub fn run_links(args: LinksArgs) -> ExitCode {
    let Some(format) = Format::from_path(&args.out) else {
        eprintln!("error: --out {}: the extension must be .csv, .graphml or .json", args.out.display());
        return ExitCode::from(2);
    };
    let loaded = match load(&args.catalog.db) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let clusters = match verified_clusters(&loaded, &args.catalog.rule(), 2) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let catalog = &loaded.catalog;
    let edges = links(catalog, &clusters);
    let written = std::fs::File::create(&args.out).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        write_links(&mut w, format, catalog, &edges)?;
        std::io::Write::flush(&mut w)
    });
    if let Err(e) = written {
        eprintln!("error: {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let sellers: std::collections::BTreeSet<&str> = edges.iter().flat_map(|l| [l.source.as_str(), l.target.as_str()]).collect();
    println!("{} sellers, {} links from {} shared photos -> {}", sellers.len(), edges.len(), clusters.len(), args.out.display());
    ExitCode::SUCCESS
}
