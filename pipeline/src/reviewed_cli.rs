//! `tusk eval --reviewed` and `tusk export reviewed`: flags in, [`tusk::reviewed`] called.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tusk::reviewed::{self, ExportFormat};
use tusk::store::{Db, Store};

use crate::runtime;

/// `tusk export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    what: ExportWhat,
}

#[derive(Debug, Subcommand)]
enum ExportWhat {
    /// The pictures reviewers confirmed or rejected, with their labels (and boxes), in the
    /// layout scripts/train (csv: listing photos) or scripts/xray (coco: scans) trains from.
    Reviewed {
        /// csv (listing photos: labels.csv) or coco (scans: annotations.json, manifest.csv, boxes.csv).
        #[arg(long, value_enum)]
        format: FormatArg,
        /// Folder to write (created; files in it are replaced).
        #[arg(long)]
        out: PathBuf,
        /// The store.
        #[arg(long, env = "TUSK_DB", default_value = "tusk.db")]
        db: Db,
        /// Folder of scanned objects' relative uris (as `tusk serve --images`); repeatable.
        #[arg(long)]
        images: Vec<PathBuf>,
        /// `tusk serve`'s data folder, where posted pictures are kept [default: beside a
        /// SQLite store, as tusk serve's].
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Coco,
}

/// Runs `tusk eval --reviewed`: a table (or JSON) of precision per model, version and label.
pub fn run_report(db: Db, json: bool) -> ExitCode {
    if !db.exists() {
        eprintln!("error: no store at {db}");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let rows = rt.block_on(async { reviewed::precision(&Store::open(&db).await?).await });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::json!({ "reviewed": rows }));
        return ExitCode::SUCCESS;
    }
    if rows.is_empty() {
        println!("no reviewed flags in {db} yet");
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<14} {:<8} {:<16} {:>9} {:>8} {:>9} {:>13}  rejected because",
        "model", "version", "label", "confirmed", "rejected", "precision", "95% interval"
    );
    for r in &rows {
        let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let [lo, hi] = r.precision_interval_95;
        let interval = format!("{lo:.2}-{hi:.2}");
        println!(
            "{:<14} {:<8} {:<16} {:>9} {:>8} {:>9.3} {interval:>13}  {}",
            r.model, r.version, r.label, r.confirmed, r.rejected, r.precision, reasons.join(", ")
        );
    }
    ExitCode::SUCCESS
}

/// Runs `tusk export reviewed`.
pub fn run_export(args: ExportArgs) -> ExitCode {
    let ExportWhat::Reviewed { format, out, db, images, data } = args.what;
    if !db.exists() {
        eprintln!("error: no store at {db}");
        return ExitCode::from(2);
    }
    let uploads = data
        .unwrap_or_else(|| match &db {
            Db::Sqlite(p) => p.with_extension("serve"),
            Db::Postgres(_) => PathBuf::from("tusk-serve-data"),
        })
        .join("uploads");
    let format = match format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Coco => ExportFormat::Coco,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let done = rt.block_on(async { reviewed::export(&Store::open(&db).await.map_err(reviewed::ExportError::from)?, format, &out, Some(&uploads), &images).await });
    match done {
        Ok(s) => {
            println!("exported {} pictures ({} boxes) to {}; {} reviewed objects have no picture here (missing.csv)", s.images, s.boxes, out.display(), s.missing);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
