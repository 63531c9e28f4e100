//! Presigned-style download URLs for the HTTP data path (§10), sans IO.
//!
//! A URL names one file of one stream and carries an expiry time and a tag over both, so that a
//! device can neither stretch the expiry nor fetch another file with it:
//! `http://127.0.0.1:<port>/ota/<stream>/<fileid>?X-Ota-Signature=<hex>&expires=<unix>`.
//! The tag is SHA-256 over a per-server secret, the path and the expiry (not AWS SigV4: the
//! device treats the URL as opaque, as it does S3's).

use sha2::{Digest, Sha256};

/// Makes and checks presigned-style URLs.
#[derive(Clone, Debug)]
pub struct Presigner {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// Secret mixed into every tag.
    pub secret: [u8; 32],
    /// Lifetime of a URL in seconds.
    pub ttl_secs: u64,
}

/// Why a download URL is refused: the server answers 403 to every case, like S3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Not a `/ota/<stream>/<fileid>` path, or no `expires`/signature parameter.
    Malformed,
    /// The tag does not match.
    BadSignature,
    /// `expires` is in the past.
    Expired,
}

impl Presigner {
    fn tag(&self, path: &str, expires: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(expires.to_string().as_bytes());
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The URL for `file_id` of `stream`, valid until `now + ttl_secs`.
    pub fn url(&self, stream: &str, file_id: u8, now: u64) -> String {
        let path = format!("/ota/{stream}/{file_id}");
        let expires = now + self.ttl_secs;
        let tag = self.tag(&path, expires);
        format!(
            "{}{path}?X-Ota-Signature={tag}&expires={expires}",
            self.base
        )
    }

    /// Checks the target of a GET (`/path?query`) at time `now`; gives the stream and file id.
    pub fn check(&self, target: &str, now: u64) -> Result<(String, u8), UrlError> {
        let (path, query) = target.split_once('?').ok_or(UrlError::Malformed)?;
        let mut parts = path
            .strip_prefix("/ota/")
            .ok_or(UrlError::Malformed)?
            .split('/');
        let (Some(stream), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(UrlError::Malformed);
        };
        let file_id: u8 = file.parse().map_err(|_| UrlError::Malformed)?;
        let mut tag = None;
        let mut expires = None;
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("X-Ota-Signature", v)) => tag = Some(v),
                Some(("expires", v)) => expires = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let (Some(tag), Some(expires)) = (tag, expires) else {
            return Err(UrlError::Malformed);
        };
        if self.tag(path, expires) != tag {
            return Err(UrlError::BadSignature);
        }
        if now > expires {
            return Err(UrlError::Expired);
        }
        Ok((stream.to_string(), file_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Presigner {
        Presigner {
            base: "http://127.0.0.1:9".into(),
            secret: [7; 32],
            ttl_secs: 60,
        }
    }

    #[test]
    fn url_round_trips_until_it_expires() {
        let url = p().url("AFR_OTA-s", 3, 1000);
        let target = url.strip_prefix("http://127.0.0.1:9").unwrap();
        assert!(target.ends_with("&expires=1060"));
        assert_eq!(p().check(target, 1060), Ok(("AFR_OTA-s".into(), 3)));
        assert_eq!(p().check(target, 1061), Err(UrlError::Expired));
    }

    #[test]
    fn a_stretched_expiry_or_other_file_is_refused() {
        let url = p().url("AFR_OTA-s", 3, 1000);
        let target = url.strip_prefix("http://127.0.0.1:9").unwrap();
        let stretched = target.replace("expires=1060", "expires=9999");
        assert_eq!(p().check(&stretched, 1000), Err(UrlError::BadSignature));
        let other = target.replace("/3?", "/4?");
        assert_eq!(p().check(&other, 1000), Err(UrlError::BadSignature));
        assert_eq!(p().check("/ota/x/1", 1000), Err(UrlError::Malformed));
        assert_eq!(p().check("/other?expires=1", 0), Err(UrlError::Malformed));
    }
}
