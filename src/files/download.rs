//! The download of one file answer: allowed hosts only (every redirect checked as the first
//! URL, every DNS answer checked for private addresses), a few tries at getting an answer, then
//! the bytes as a stream that is counted, capped at `files.max_bytes` and hashed (SHA-256) as it
//! passes, never held whole.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use sha2::{Digest, Sha256};

use super::policy::{is_public, private_host_listed, type_allowed, HostPolicy};
use super::settings::FileSettings;
use super::Refusal;
use crate::ghl::http::describe_reqwest_error;

/// Downloads file answers under `[files]`. One per process; cheap to share.
#[derive(Debug, Clone)]
pub struct Downloader {
    http: reqwest::Client,
    settings: Arc<FileSettings>,
}

/// An answered download whose bytes are still to come.
#[derive(Debug)]
pub struct Download {
    /// The name to give the file: the answer's (its link's last segment), else the server's.
    pub file_name: String,
    /// Its MIME type, as the file host said (`application/octet-stream` when it said nothing).
    pub content_type: String,
    response: reqwest::Response,
    max_bytes: u64,
}

/// What went through a download's stream: read after the stream was consumed.
#[derive(Debug, Clone, Default)]
pub struct Tally(Arc<Mutex<TallyState>>);

#[derive(Debug, Default)]
struct TallyState {
    hasher: Sha256,
    bytes: u64,
    failure: Option<Refusal>,
    finished: bool,
}

/// A whole file that went through: its size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub sha256: String,
}

impl Tally {
    fn state(&self) -> MutexGuard<'_, TallyState> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Why the stream stopped short, if it did.
    pub fn failure(&self) -> Option<Refusal> {
        self.state().failure.clone()
    }

    /// The whole file's size and checksum, once its stream ended; else why not.
    pub fn received(&self) -> Result<Received, Refusal> {
        let state = self.state();
        if let Some(failure) = &state.failure {
            return Err(failure.clone());
        }
        if !state.finished {
            return Err(Refusal::Failed(
                "the upload ended before the whole file was read".to_owned(),
            ));
        }
        Ok(Received {
            bytes: state.bytes,
            sha256: hex::encode(state.hasher.clone().finalize()),
        })
    }
}

impl Downloader {
    /// A downloader with `settings` (already validated): no automatic redirects, and a resolver
    /// that hands out public addresses only, except for `files.private_hosts`.
    pub fn new(settings: FileSettings) -> Result<Self, reqwest::Error> {
        let settings = Arc::new(settings);
        let http = reqwest::Client::builder()
            .user_agent(crate::ghl::http::USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly(settings.clone())))
            .connect_timeout(settings.timeout)
            .build()?;
        Ok(Self { http, settings })
    }

    /// The settings it downloads under.
    pub fn settings(&self) -> &FileSettings {
        &self.settings
    }

    /// Gets `url`'s answer (following allowed redirects only, retrying what may pass) and checks
    /// its size and type before any byte is read.
    pub async fn open(&self, url: &str, step_hosts: &[String]) -> Result<Download, Refusal> {
        let first = url::Url::parse(url)
            .map_err(|e| Refusal::NotAllowed(format!("`{url}` is not a URL: {e}")))?;
        let policy = HostPolicy {
            step_hosts,
            settings: &self.settings,
        };
        let response = self.follow(first.clone(), &policy).await?;
        let max = self.settings.max_bytes;
        if let Some(length) = response.content_length().filter(|l| *l > max) {
            return Err(Refusal::TooBig(format!(
                "{length} bytes, over files.max_bytes ({max})"
            )));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let file_name = name_in_link(&first)
            .or_else(|| header(CONTENT_DISPOSITION).and_then(|d| name_in_disposition(&d)))
            .unwrap_or_else(|| "file".to_owned());
        type_allowed(&self.settings, content_type.as_deref(), &file_name)?;
        Ok(Download {
            file_name,
            content_type: content_type
                .filter(|t| t.parse::<mime::Mime>().is_ok())
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            response,
            max_bytes: max,
        })
    }

    /// The final answer for `url`: each hop checked, up to `files.max_redirects` redirects.
    async fn follow(
        &self,
        mut url: url::Url,
        policy: &HostPolicy<'_>,
    ) -> Result<reqwest::Response, Refusal> {
        let mut redirects = 0;
        loop {
            policy.check(&url)?;
            let response = self.answer(&url).await?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            redirects += 1;
            if redirects > self.settings.max_redirects {
                return Err(Refusal::Failed(format!(
                    "more than {} redirects (files.max_redirects)",
                    self.settings.max_redirects
                )));
            }
            let target = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    Refusal::Failed(format!(
                        "the file host answered {} without a usable Location",
                        response.status().as_u16()
                    ))
                })?;
            policy.check(&target).map_err(|refusal| {
                Refusal::NotAllowed(format!("redirected elsewhere: {}", refusal.reason()))
            })?;
            url = target;
        }
    }

    /// One hop's answer, tried `files.download_attempts` times while the host may yet answer
    /// (no connection, a timeout, a 5xx or a 429).
    async fn answer(&self, url: &url::Url) -> Result<reqwest::Response, Refusal> {
        let attempts = self.settings.download_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                // 0.5 s, 1 s, 2 s, …: a moment for a file host that hiccuped.
                let pause = Duration::from_millis(500) * 2u32.saturating_pow(attempt - 2);
                tokio::time::sleep(pause).await;
            }
            let sent = self
                .http
                .get(url.clone())
                .timeout(self.settings.timeout)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    last = format!("the file host answered {}", r.status().as_u16());
                }
                Ok(r) if r.status().is_success() || r.status().is_redirection() => return Ok(r),
                Ok(r) => {
                    return Err(Refusal::Failed(format!(
                        "the file host answered {}",
                        r.status().as_u16()
                    )))
                }
                Err(e) => last = describe_reqwest_error(&e),
            }
        }
        Err(Refusal::Failed(format!("{last} (after {attempts} tries)")))
    }
}

impl Download {
    /// The file's bytes as an upload body, and the tally of what went through it: each chunk
    /// is counted (the stream fails past `files.max_bytes`, so the upload is cut off) and
    /// hashed as it passes.
    pub fn into_body(self) -> (reqwest::Body, Tally) {
        let tally = Tally::default();
        let stream = capped(self.response.bytes_stream(), self.max_bytes, tally.clone());
        (reqwest::Body::wrap_stream(stream), tally)
    }
}

/// `inner`, counted, capped and hashed into `tally`.
fn capped(
    inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    max_bytes: u64,
    tally: Tally,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(
        (Box::pin(inner), tally),
        move |(mut inner, tally)| async move {
            let next = inner.next().await;
            let item = {
                let mut state = tally.state();
                if state.failure.is_some() {
                    return None;
                }
                match next {
                    None => {
                        state.finished = true;
                        return None;
                    }
                    Some(Ok(chunk)) => {
                        state.bytes += chunk.len() as u64;
                        if state.bytes > max_bytes {
                            let refusal = Refusal::TooBig(format!(
                                "more than files.max_bytes ({max_bytes} bytes) arrived"
                            ));
                            state.failure = Some(refusal.clone());
                            Err(std::io::Error::other(refusal))
                        } else {
                            state.hasher.update(&chunk);
                            Ok(chunk)
                        }
                    }
                    Some(Err(e)) => {
                        let refusal = Refusal::Failed(format!(
                            "the download broke off: {}",
                            describe_reqwest_error(&e)
                        ));
                        state.failure = Some(refusal.clone());
                        Err(std::io::Error::other(refusal))
                    }
                }
            };
            Some((item, (inner, tally)))
        },
    )
}

/// The link's last path segment, decoded and made safe as a file name.
fn name_in_link(url: &url::Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    safe_name(&decoded)
}

/// `filename="…"` of a `Content-Disposition`.
fn name_in_disposition(value: &str) -> Option<String> {
    let (_, rest) = value.split_once("filename=")?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    safe_name(name)
}

/// No path, quotes or control characters; at most 200 characters; `None` when nothing is left.
fn safe_name(name: &str) -> Option<String> {
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let clean = clean.trim().to_owned();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

/// The resolver every download uses: a name resolving only to private addresses is refused,
/// unless it is one of `files.private_hosts`. Checking the addresses connected to (not the
/// name) closes DNS rebinding: the name cannot point elsewhere between a check and the
/// connection.
struct PublicOnly(Arc<FileSettings>);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let private_ok = private_host_listed(&self.0, &host, None)
            || self.0.private_hosts.iter().any(|e| {
                e.split_once(':')
                    .is_some_and(|(h, _)| h.eq_ignore_ascii_case(&host))
            });
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| private_ok || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = Box::new(
                    std::io::Error::other(format!(
                        "{host} resolves to no public address (allowed only through files.private_hosts)"
                    )),
                );
                return Err(refused);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_decoded_and_safe() {
        let url =
            url::Url::parse("https://www.jotform.com/uploads/u/2436/6114/frontend%20setup.jpg")
                .unwrap();
        assert_eq!(name_in_link(&url).as_deref(), Some("frontend setup.jpg"));
        assert_eq!(
            name_in_disposition("attachment; filename=\"../../etc/passwd\"").as_deref(),
            Some("passwd")
        );
        assert_eq!(safe_name(".."), None);
    }
}
