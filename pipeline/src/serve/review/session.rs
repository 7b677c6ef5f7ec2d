//! Signing in to the review page: the analyst's token in an HttpOnly, SameSite=Strict cookie
//! (never readable by scripts, never sent by other sites), and a CSRF field on every form,
//! derived from the token, checked on every post.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::serve::App;

/// The session cookie's name.
pub const COOKIE: &str = "tusk_session";

/// The session token from the request's cookies.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The CSRF value of a session: a forged form from another site cannot know it.
pub fn csrf(token: &str) -> String {
    hex::encode(&Sha256::digest(format!("tusk-csrf\0{token}").as_bytes())[..16])
}

/// Whether a posted form carries the session's CSRF value and, when the browser says where the
/// form came from, came from this server.
pub fn form_ok(headers: &HeaderMap, token: &str, posted: Option<&str>) -> bool {
    let expected = csrf(token);
    let same = posted.is_some_and(|p| p.len() == expected.len() && p.bytes().zip(expected.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0);
    let origin_ok = match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, h)| h == host),
        _ => true,
    };
    same && origin_ok
}

/// The Set-Cookie value that signs `token` in.
pub fn sign_in_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The Set-Cookie value that signs out.
pub fn sign_out_cookie() -> HeaderValue {
    HeaderValue::from_static("tusk_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Lets the signed-in page read `/v1` (images, JSON) with its cookie: a GET without an
/// `Authorization` header gets the session's token as its bearer. Posts to `/v1` still need
/// the header, so a cookie alone can change nothing there.
pub async fn cookie_reads(State(_app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if safe && req.uri().path().starts_with("/v1/") && !req.headers().contains_key(header::AUTHORIZATION) {
        if let Some(t) = token(req.headers()) {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_csrf() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; tusk_session=tusk_abc ; b=2"));
        assert_eq!(token(&h).as_deref(), Some("tusk_abc"));
        let c = csrf("tusk_abc");
        assert_eq!(c.len(), 32);
        assert_ne!(c, csrf("tusk_abd"));
        assert!(form_ok(&h, "tusk_abc", Some(&c)));
        assert!(!form_ok(&h, "tusk_abc", Some(&csrf("other"))));
        assert!(!form_ok(&h, "tusk_abc", None));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!form_ok(&h, "tusk_abc", Some(&c)), "a form posted from another site");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(form_ok(&h, "tusk_abc", Some(&c)));
        assert!(token(&HeaderMap::new()).is_none());
    }
}
