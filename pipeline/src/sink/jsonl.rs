//! Appends one JSON line per record to a file, flushed with every batch.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::record::Record;

/// An open JSONL output file (appended to, so an interrupted run's lines are kept).
#[derive(Debug)]
pub struct JsonlSink {
    out: BufWriter<File>,
}

impl JsonlSink {
    /// Opens `path` for appending, creating it and its folder when missing.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    /// Writes the records and flushes them to the operating system.
    pub fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        for r in records {
            self.out.write_all(r.to_json_line().as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}
