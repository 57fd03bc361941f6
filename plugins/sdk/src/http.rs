//! Outbound HTTP through the host, to destinations the manifest allows.

use crate::Kv;
use crate::bindings::http as raw;

pub use raw::{HttpError, Response};

/// A request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    inner: raw::Request,
}

impl Request {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            inner: raw::Request {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
                follow_redirects: true,
            },
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push(Kv {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, json: impl Into<String>) -> Self {
        self.header("content-type", "application/json")
            .body(json.into().into_bytes())
    }

    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.inner.timeout_ms = Some(timeout_ms);
        self
    }

    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.inner.follow_redirects = follow;
        self
    }

    pub fn send(&self) -> Result<Response, HttpError> {
        raw::fetch(&self.inner)
    }
}

impl Response {
    /// The first header named `key`, compared case-insensitively.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|kv| kv.key.eq_ignore_ascii_case(key))
            .map(|kv| kv.value.as_str())
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `scheme://host:port` of `url`, without credentials, path or query —
/// what a message may name (a webhook URL's path or query is often its
/// secret).
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    }
}

/// A plain-text description of an HTTP error (the generated `Display` is
/// the debug form).
pub fn describe(err: &HttpError) -> String {
    match err {
        HttpError::Denied(why) => format!("denied: {why}"),
        HttpError::Timeout => "timed out".into(),
        HttpError::TooLarge(limit) => format!("response body larger than {limit} bytes"),
        HttpError::InvalidRequest(why) => format!("invalid request: {why}"),
        HttpError::Transport(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_keeps_no_secret() {
        assert_eq!(
            origin("https://user:pw@hooks.example.com:8443/T0/B0/XXXX?token=s3cret"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(origin("http://127.0.0.1:9/hook"), "http://127.0.0.1:9");
    }
}
