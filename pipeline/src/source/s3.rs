//! S3-compatible object storage (AWS, MinIO, Ceph, Garage, s3s): listing streamed page by page,
//! ETags as fingerprints, and downloads with timeouts and retries (exponential backoff with
//! jitter on throttling, 5xx, timeouts and dropped connections; other 4xx fail at once).

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use super::{Entry, Item, Kind, Location, ObjectMeta};
use crate::record::Failure;

/// How to reach the object store; `None` fields come from the standard AWS chain
/// (environment, profile, `AWS_ENDPOINT_URL`).
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Endpoint URL, for anything but AWS itself.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` when nothing says otherwise).
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most self-hosted servers need.
    pub path_style: bool,
    /// Time allowed for one request attempt.
    pub timeout: Duration,
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Downloads in flight at once.
    pub concurrency: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            path_style: false,
            timeout: Duration::from_secs(30),
            attempts: 5,
            concurrency: 16,
        }
    }
}

/// `s3://bucket/prefix`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// A problem that stops a run before it starts: credentials, bucket, endpoint.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct S3SetupError(pub String);

/// Builds a client: the standard AWS configuration chain, then the options on top.
pub async fn client(opts: &S3Options) -> Client {
    // Environment and profile only: the default chain would also ask the EC2 metadata service,
    // a network call that makes no sense for a self-hosted store.
    let region = RegionProviderChain::first_try(opts.region.clone().map(aws_sdk_s3::config::Region::new))
        .or_else(aws_config::environment::region::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else("us-east-1");
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    let endpoint = opts.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(e) = &endpoint {
        // A self-hosted store: credentials come from the environment or a profile, never from
        // the EC2/ECS metadata services (network calls that cannot help here).
        loader = loader.endpoint_url(e).credentials_provider(
            aws_config::meta::credentials::CredentialsProviderChain::first_try(
                "environment",
                aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else("profile", aws_config::profile::ProfileFileCredentialsProvider::builder().build()),
        );
    }
    let shared = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(opts.path_style)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.attempts.max(1))
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5).min(opts.timeout))
                .operation_attempt_timeout(opts.timeout)
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// One quick request with no retries, so bad credentials, a missing bucket or an unreachable
/// endpoint are one clear line at start instead of an hour of retries.
pub async fn check(opts: &S3Options, url: &S3Url) -> Result<(), S3SetupError> {
    let quick = S3Options {
        attempts: 1,
        timeout: Duration::from_secs(10),
        ..opts.clone()
    };
    let client = client(&quick).await;
    let res = client.list_objects_v2().bucket(&url.bucket).prefix(&url.prefix).max_keys(1).send().await;
    match res {
        Ok(_) => Ok(()),
        Err(e) => Err(S3SetupError(setup_message(&e, &url.bucket, opts))),
    }
}

fn setup_message<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, aws_smithy_runtime_api::http::Response>,
    bucket: &str,
    opts: &S3Options,
) -> String {
    let endpoint = opts.endpoint.clone().unwrap_or_else(|| "the AWS default endpoint".into());
    let text = causes(e);
    if text.contains("credentials") && !matches!(e, SdkError::ServiceError(_)) {
        return format!(
            "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile ({text})"
        );
    }
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            format!("cannot reach the object store at {endpoint}: {text}")
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            match (status, code) {
                (_, "NoSuchBucket") | (404, _) => format!("bucket `{bucket}` does not exist at {endpoint}"),
                (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch") | (401 | 403, _) => format!(
                    "access to bucket `{bucket}` denied ({status} {code}): check the credentials \
                     (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile)"
                ),
                _ => format!("bucket `{bucket}`: {status} {code}: {}", se.err().message().unwrap_or("")),
            }
        }
        _ => format!("object store at {endpoint}: {text}"),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its causes on one line, without the SDK's debug dumps.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    one_line(&parts.join(": "))
}

/// Maps key prefixes to kinds (`listings/=listing,xray/=xray`): the longest matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindRules(pub Vec<(String, Kind)>);

impl KindRules {
    /// Parses `prefix=kind,prefix=kind`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (prefix, kind) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected PREFIX=KIND"))?;
            rules.push((prefix.to_string(), kind.parse::<Kind>()?));
        }
        Ok(KindRules(rules))
    }

    /// The kind for `key`, or `default`.
    pub fn kind_for(&self, key: &str, default: Kind) -> Kind {
        self.0
            .iter()
            .filter(|(p, _)| key.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, k)| *k)
            .unwrap_or(default)
    }
}

/// Sleeps for attempt `n`'s backoff: 200 ms doubling up to 5 s, with full jitter.
async fn backoff(n: u32) {
    let cap = (200u64 << n.min(5)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // Mix the clock's low bits (xorshift) for a cheap, dependency-free jitter.
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15 ^ (n as u64) << 32;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    tokio::time::sleep(Duration::from_millis(cap / 2 + x % (cap / 2 + 1))).await;
}

/// Lists `url` page by page, handing each object to `emit` as it arrives (memory stays flat
/// however many keys there are); stops when `emit` returns false. A page that keeps failing
/// is retried for about a minute before the listing gives up.
pub async fn list<F, Fut>(client: &Client, url: &S3Url, rules: &KindRules, default_kind: Kind, mut emit: F) -> Result<(), String>
where
    F: FnMut(Entry) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut token: Option<String> = None;
    loop {
        let mut attempt = 0;
        let page = loop {
            let res = client
                .list_objects_v2()
                .bucket(&url.bucket)
                .prefix(&url.prefix)
                .set_continuation_token(token.clone())
                .send()
                .await;
            match res {
                Ok(p) => break p,
                Err(e) if attempt < 12 && retryable(&e) => {
                    attempt += 1;
                    tracing::warn!(bucket = %url.bucket, "listing failed, retrying: {}", causes(&e));
                    backoff(attempt).await;
                }
                Err(e) => return Err(causes(&e)),
            }
        };
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            if key.ends_with('/') {
                continue;
            }
            let item = Item {
                uri: format!("s3://{}/{key}", url.bucket),
                location: Location::S3 {
                    bucket: url.bucket.clone(),
                    key: key.to_string(),
                },
                fingerprint: Some(fingerprint(obj.e_tag(), obj.size(), obj.last_modified())),
                meta: ObjectMeta {
                    kind: rules.kind_for(key, default_kind),
                    ..ObjectMeta::default()
                },
            };
            if !emit(Entry::Item(item)).await {
                return Ok(());
            }
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() || page.is_truncated() != Some(true) {
            return Ok(());
        }
    }
}

fn retryable<E, R>(e: &SdkError<E, R>) -> bool
where
    R: std::fmt::Debug,
    E: std::fmt::Debug,
{
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => {
            let raw = format!("{:?}", se.raw());
            raw.contains("status: 5") || raw.contains("status: 429") || raw.contains("status: 503")
        }
        _ => false,
    }
}

/// An object's fingerprint: its ETag, or size and modification time where the store gives no
/// ETag (some servers do not for objects written behind their back).
fn fingerprint(etag: Option<&str>, size: Option<i64>, modified: Option<&aws_sdk_s3::primitives::DateTime>) -> String {
    match etag.map(|t| t.trim_matches('"')).filter(|t| !t.is_empty()) {
        Some(t) => t.to_string(),
        None => format!(
            "{}-{}",
            size.unwrap_or(-1),
            modified.map(|m| m.as_nanos().to_string()).unwrap_or_default()
        ),
    }
}

/// The fingerprint of one object (for manifest lines that name an `s3://` uri).
pub async fn head(client: &Client, bucket: &str, key: &str) -> Result<String, Failure> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(fingerprint(h.e_tag(), h.content_length(), h.last_modified())),
        Err(e) => Err(get_failure(&e, bucket, key)),
    }
}

fn get_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, aws_smithy_runtime_api::http::Response>,
    bucket: &str,
    key: &str,
) -> Failure {
    let text = causes(e);
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let reason = match (status, code) {
                (_, "NoSuchKey") | (404, _) => "not_found",
                (401 | 403, _) => "access_denied",
                (429 | 500..=599, _) => "unavailable",
                _ => "request_failed",
            };
            Failure::read(reason, format!("s3://{bucket}/{key}: {status} {code}"))
        }
        SdkError::TimeoutError(_) => Failure::read("timeout", format!("s3://{bucket}/{key}: {text}")),
        _ => Failure::read("unavailable", format!("s3://{bucket}/{key}: {text}")),
    }
}

/// Downloads one object whole. The SDK retries the request; a body that breaks off midway is
/// fetched again, with backoff. Objects over `max_bytes` are refused before the body is read.
pub async fn get(client: &Client, bucket: &str, key: &str, max_bytes: u64, attempts: u32) -> Result<Vec<u8>, Failure> {
    let mut attempt = 0;
    loop {
        let out = match client.get_object().bucket(bucket).key(key).send().await {
            Ok(o) => o,
            Err(e) => return Err(get_failure(&e, bucket, key)),
        };
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        if len > max_bytes {
            return Err(Failure::read(
                "file_too_large",
                format!("s3://{bucket}/{key}: {len} bytes is over --max-file-mb ({max_bytes} bytes)"),
            ));
        }
        match out.body.collect().await {
            Ok(data) => return Ok(data.into_bytes().to_vec()),
            Err(e) if attempt + 1 < attempts.max(1) => {
                attempt += 1;
                tracing::debug!(bucket, key, "download broke off, retrying: {e}");
                backoff(attempt).await;
            }
            Err(e) => return Err(Failure::read("unavailable", format!("s3://{bucket}/{key}: body: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_kind_rules() {
        assert_eq!(
            S3Url::parse("s3://b/listings/2026/"),
            Some(S3Url { bucket: "b".into(), prefix: "listings/2026/".into() })
        );
        assert_eq!(S3Url::parse("s3://b"), Some(S3Url { bucket: "b".into(), prefix: "".into() }));
        assert_eq!(S3Url::parse("/local/path"), None);
        let rules = KindRules::parse("listings/=listing, xray/=xray,xray/old/=listing").unwrap();
        assert_eq!(rules.kind_for("xray/a.png", Kind::Listing), Kind::Xray);
        assert_eq!(rules.kind_for("xray/old/a.png", Kind::Xray), Kind::Listing);
        assert_eq!(rules.kind_for("other/a.png", Kind::Xray), Kind::Xray);
        assert!(KindRules::parse("xray/").is_err());
        assert!(KindRules::parse("xray/=parcel").is_err());
    }
}
