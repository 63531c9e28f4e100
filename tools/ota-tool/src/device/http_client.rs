//! The driver's `HttpRangeClient` over the tool's blocking HTTP/1.1 client (plain `http://`
//! URLs, as `ota serve` presigns them), run on tokio's blocking pool and bounded in time.

use std::time::Duration;

use ota_core::agent::HttpFailure;
use ota_core::driver::HttpRangeClient;

/// How long one range request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a range request gave.
#[derive(Debug)]
pub enum Fetched {
    /// The body.
    Body(Vec<u8>),
    /// HTTP 403: the presigned URL expired.
    Expired,
    /// Anything else.
    Failed,
}

/// GET `url` bytes `start..=end`.
pub async fn fetch(url: &str, start: u32, end: u32) -> Fetched {
    let Some(rest) = url.strip_prefix("http://") else {
        return Fetched::Failed;
    };
    let (addr, target) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (addr, target) = (addr.to_string(), target.to_string());
    let range = format!("bytes={start}-{end}");
    let job = tokio::task::spawn_blocking(move || {
        crate::http::request_blocking(&addr, "GET", &target, &[("Range", &range)], &[])
    });
    match tokio::time::timeout(HTTP_TIMEOUT, job).await {
        Ok(Ok(Ok((206 | 200, _, body)))) => Fetched::Body(body),
        Ok(Ok(Ok((403, _, _)))) => Fetched::Expired,
        _ => Fetched::Failed,
    }
}

/// A client with a hook called for every answer.
pub struct HostHttp<F: FnMut(&Fetched)> {
    /// Called with each answer (progress, events).
    pub observe: F,
}

impl<F: FnMut(&Fetched)> HttpRangeClient for HostHttp<F> {
    async fn get(
        &mut self,
        url: &str,
        start: u32,
        end: u32,
        buf: &mut [u8],
    ) -> Result<usize, HttpFailure> {
        let r = fetch(url, start, end).await;
        (self.observe)(&r);
        match r {
            Fetched::Body(body) => {
                let dst = buf.get_mut(..body.len()).ok_or(HttpFailure::Other)?;
                dst.copy_from_slice(&body);
                Ok(body.len())
            }
            Fetched::Expired => Err(HttpFailure::Expired),
            Fetched::Failed => Err(HttpFailure::Other),
        }
    }
}
