//! A minimal HTTP/1.1 server on tokio (one request per connection, `Connection: close`), used
//! for the presigned-URL download path (§10: `GET` with `Range: bytes=a-b` → 206) and the
//! loopback admin API, and a matching blocking client for the `ota job` commands.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (an admin job creation carries the image in base64).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed request.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The request target (`/path?query`).
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Length and Connection are added).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body and a content type.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// A JSON response.
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Self::new(
            status,
            "application/json",
            serde_json::to_vec(v).unwrap_or_default(),
        )
    }

    /// A plain-text response.
    pub fn text(status: u16, s: &str) -> Self {
        Self::new(status, "text/plain", s.as_bytes().to_vec())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        _ => "Other",
    }
}

/// Header (name, value) pairs.
pub type Headers = Vec<(String, String)>;

/// Parses a request head (`GET /x HTTP/1.1\r\nName: v\r\n...`), without the blank line.
pub fn parse_head(head: &str) -> Option<(String, String, Headers)> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if !version.starts_with("HTTP/1.") || first.next().is_some() {
        return None;
    }
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((method.to_string(), target.to_string(), headers))
}

/// A byte range of a `Range: bytes=...` header resolved against a length: `Ok(None)` when the
/// header is absent, `Err(())` when it cannot be satisfied (416). Supports one range of the
/// forms `a-b`, `a-` and `-n`.
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(h) = header else { return Ok(None) };
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
        }
        (a, "") => (a.parse().map_err(|_| ())?, len.checked_sub(1).ok_or(())?),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            if b < a {
                return Err(());
            }
            (a, b.min(len.saturating_sub(1)))
        }
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The request handler type.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

async fn read_request(sock: &mut TcpStream) -> Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            bail!("request head too large");
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the request head ended");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = std::str::from_utf8(buf.get(..head_end).unwrap_or_default())?;
    let (method, target, headers) = parse_head(head).context("malformed request head")?;
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse())
        .transpose()?
        .unwrap_or(0);
    if len > MAX_BODY {
        bail!("body too large");
    }
    let mut body = buf.get(head_end + 4..).unwrap_or_default().to_vec();
    if body.len() < len {
        let already = body.len();
        body.resize(len, 0);
        sock.read_exact(body.get_mut(already..).unwrap_or_default())
            .await?;
    }
    body.truncate(len);
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Serves connections with `handler` until the listener fails.
pub async fn serve(listener: TcpListener, handler: Handler) -> Result<()> {
    loop {
        let (mut sock, _) = listener.accept().await?;
        let h = handler.clone();
        tokio::spawn(async move {
            let req = tokio::time::timeout(Duration::from_secs(30), read_request(&mut sock)).await;
            let resp = match req {
                Ok(Ok(req)) => h(req).await,
                _ => Response::text(400, "bad request\n"),
            };
            let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
            for (n, v) in &resp.headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                resp.body.len()
            ));
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.write_all(&resp.body).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// A blocking HTTP/1.1 request (for the CLI and tests): gives status, headers and body.
pub fn request_blocking(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Headers, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(addr)
        .with_context(|| format!("connecting to {addr} (is `ota serve` running?)"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let p = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a head")?;
    let head = std::str::from_utf8(resp.get(..p).unwrap_or_default())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, hdrs, resp.get(p + 4..).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some("bytes=10-12"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=5-4"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Err(()));
        assert_eq!(parse_range(Some("items=0-1"), 10), Err(()));
    }

    #[test]
    fn heads() {
        let (m, t, h) =
            parse_head("GET /ota/s/0?x=1 HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1").unwrap();
        assert_eq!((m.as_str(), t.as_str()), ("GET", "/ota/s/0?x=1"));
        assert_eq!(h[1], ("range".to_string(), "bytes=0-1".to_string()));
        assert!(parse_head("GET /\r\n").is_none());
    }
}
