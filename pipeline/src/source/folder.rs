//! A local folder, walked recursively in a stable order. Only image extensions are taken;
//! symbolic links are followed only while they stay inside the root.

use std::path::Path;

use walkdir::WalkDir;

use super::{Entry, Item, Kind, Location, ObjectMeta, Rejected};

/// File extensions tusk reads from folders (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "tif", "tiff", "gif", "bmp"];

/// True when `path` has one of the image extensions.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Walks `root`, emitting one entry per image file (and one rejection per link that leaves it).
pub fn walk(root: &Path, kind: Kind, emit: &mut dyn FnMut(Entry) -> bool) -> std::io::Result<()> {
    let root = root.canonicalize()?;
    let mut walker = WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(next) = walker.next() {
        let entry = match next {
            Ok(e) => e,
            Err(e) => {
                let uri = e.path().map(|p| p.display().to_string()).unwrap_or_default();
                let reason = if e.loop_ancestor().is_some() { "link_loop" } else { "io_error" };
                if !emit(Entry::Rejected(Rejected { uri, reason, message: e.to_string() })) {
                    return Ok(());
                }
                continue;
            }
        };
        if entry.path_is_symlink() {
            let inside = entry
                .path()
                .canonicalize()
                .map(|real| real.starts_with(&root))
                .unwrap_or(false);
            if !inside {
                if entry.file_type().is_dir() {
                    walker.skip_current_dir();
                } else if !is_image_path(entry.path()) {
                    continue;
                }
                let rejected = Rejected {
                    uri: entry.path().display().to_string(),
                    reason: "outside_root",
                    message: format!("symbolic link leaves the source folder {}", root.display()),
                };
                if !emit(Entry::Rejected(rejected)) {
                    return Ok(());
                }
                continue;
            }
        }
        if !entry.file_type().is_file() || !is_image_path(entry.path()) {
            continue;
        }
        let item = Item {
            uri: entry.path().display().to_string(),
            location: Location::File(entry.path().to_path_buf()),
            fingerprint: entry.metadata().ok().map(|m| super::file_fingerprint(&m)),
            meta: ObjectMeta {
                kind,
                ..ObjectMeta::default()
            },
        };
        if !emit(Entry::Item(item)) {
            return Ok(());
        }
    }
    Ok(())
}
