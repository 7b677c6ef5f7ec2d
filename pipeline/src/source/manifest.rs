//! A JSONL manifest: one object per line, `{"uri": …, "kind": …, "listing_id": …,
//! "seller_id": …, "platform": …, "meta": {…}}`. Relative paths are relative to the manifest.

use std::io::BufRead;
use std::path::{Path, PathBuf};


use serde::Deserialize;

use super::{Entry, Item, Kind, Location, ObjectMeta, Rejected};

/// One manifest line as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    uri: String,
    kind: Option<Kind>,
    listing_id: Option<IdValue>,
    seller_id: Option<IdValue>,
    platform: Option<String>,
    meta: Option<serde_json::Value>,
}

/// Crawlers write ids as strings or numbers; both are kept as text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

/// Resolves a manifest `uri`: `s3://bucket/key`, `file://` URIs and plain paths.
pub fn resolve(uri: &str, base: &Path) -> Result<Location, String> {
    if let Some(url) = super::s3::S3Url::parse(uri) {
        if url.prefix.is_empty() {
            return Err(format!("`{uri}` names a bucket, not an object"));
        }
        return Ok(Location::S3 { bucket: url.bucket, key: url.prefix });
    }
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if let Some((scheme, _)) = uri.split_once("://") {
        return Err(format!("`{scheme}://` uris are not supported by this source"));
    } else {
        PathBuf::from(uri)
    };
    Ok(Location::File(if path.is_absolute() { path } else { base.join(path) }))
}

/// Reads the manifest line by line, emitting items and rejections for bad lines.
pub fn walk(path: &Path, default_kind: Kind, emit: &mut dyn FnMut(Entry) -> bool) -> std::io::Result<()> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = match parse(&line, &base, default_kind) {
            Ok(item) => Entry::Item(item),
            Err(message) => Entry::Rejected(Rejected {
                uri: format!("{}:{}", path.display(), n + 1),
                reason: "bad_manifest_line",
                message,
            }),
        };
        if !emit(entry) {
            break;
        }
    }
    Ok(())
}

/// Parses one manifest line (not blank) into an item, or says why it is not one; relative
/// paths are resolved against `base`, and objects without a `kind` get `default_kind`.
pub fn parse(line: &str, base: &Path, default_kind: Kind) -> Result<Item, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let location = resolve(&l.uri, base)?;
    Ok(Item {
        uri: l.uri,
        location,
        fingerprint: None,
        meta: ObjectMeta {
            kind: l.kind.unwrap_or(default_kind),
            listing_id: l.listing_id.map(IdValue::into_string),
            seller_id: l.seller_id.map(IdValue::into_string),
            platform: l.platform,
            meta: l.meta,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_line_and_numeric_ids() {
        let item = parse(
            r#"{"uri":"a/b.jpg","kind":"xray","listing_id":12,"seller_id":"s1","platform":"p","meta":{"x":1}}"#,
            Path::new("/base"),
            Kind::Listing,
        )
        .unwrap();
        assert_eq!(item.location, Location::File(PathBuf::from("/base/a/b.jpg")));
        assert_eq!(item.meta.kind, Kind::Xray);
        assert_eq!(item.meta.listing_id.as_deref(), Some("12"));
        assert_eq!(item.meta.meta, Some(serde_json::json!({"x": 1})));
    }

    #[test]
    fn rejects_typos_and_missing_uri() {
        assert!(parse(r#"{"uri":"a.jpg","seler_id":"x"}"#, Path::new("."), Kind::Listing).is_err());
        assert!(parse(r#"{"kind":"listing"}"#, Path::new("."), Kind::Listing).is_err());
        assert!(parse(r#"{"uri":"s3://bucket-only"}"#, Path::new("."), Kind::Listing).is_err());
        assert!(parse(r#"{"uri":"http://x/k.jpg"}"#, Path::new("."), Kind::Listing).is_err());
        let s3 = parse(r#"{"uri":"s3://b/k/1.jpg"}"#, Path::new("."), Kind::Listing).unwrap();
        assert_eq!(s3.location, Location::S3 { bucket: "b".into(), key: "k/1.jpg".into() });
    }
}
