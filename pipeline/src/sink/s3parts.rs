//! JSONL results written back to object storage as part files. Each part is one PutObject, so
//! it appears whole or not at all; a consumer never reads half a part. Names sort by time:
//! `PREFIX/part-<unix-ms>-<run>-<seq>.jsonl`.

use aws_sdk_s3::primitives::ByteStream;

use crate::record::Record;
use crate::source::s3::S3Url;

/// An open part-file writer for one run.
#[derive(Debug)]
pub struct S3Parts {
    client: aws_sdk_s3::Client,
    url: S3Url,
    run_id: i64,
    seq: u64,
}

impl S3Parts {
    /// Writes parts under `url` (its prefix should end with `/`) for run `run_id`.
    pub fn new(client: aws_sdk_s3::Client, url: S3Url, run_id: i64) -> Self {
        Self { client, url, run_id, seq: 0 }
    }

    /// Uploads `records` as the next part; returns its key.
    pub async fn put(&mut self, records: &[Record]) -> Result<String, String> {
        let mut body = Vec::with_capacity(records.len() * 512);
        for r in records {
            body.extend_from_slice(r.to_json_line().as_bytes());
            body.push(b'\n');
        }
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        self.seq += 1;
        let key = format!("{}part-{ms:013}-{:06}-{:06}.jsonl", self.url.prefix, self.run_id, self.seq);
        self.client
            .put_object()
            .bucket(&self.url.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| format!("writing s3://{}/{key}: {}", self.url.bucket, aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(key)
    }
}
