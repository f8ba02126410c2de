//! File answers fetched for `[[mapping.files]]`: downloaded from the tool's own file hosts only
//! and streamed on (into GHL's file custom fields), never held whole.
//!
//! Security stance: formbridge is closed by default and must not become a tool for reaching
//! what only it can reach (SSRF). A link in a submission is untrusted input, so a download goes
//! only to a host on an allow-list — the tool's file servers (Jotform: `www.jotform.com`, …),
//! `mapping.file_hosts` and `files.hosts` — over https on port 443, and only to public addresses
//! (every DNS answer is checked, not just the name; loopback, private, link-local and metadata
//! addresses are refused). Every redirect is checked the same way before it is followed. Plain
//! http and private addresses are possible only for hosts named in `files.private_hosts` (an
//! internal file server, a test's). Size (`files.max_bytes`, on `Content-Length` and while
//! streaming), type (`files.content_types`, `files.extensions`) and time (`files.timeout`) are
//! capped.
//!
//! - [`settings`]: the `[files]` keys.
//! - `policy`: the host, address and type allow-lists.
//! - [`download`]: [`Downloader`], one file's checked, capped, hashed stream.

pub mod download;
mod policy;
pub mod settings;

pub use download::{Download, Downloader, Received, Tally};
pub use settings::{FileConfigError, FileSettings};

/// Why a file was not uploaded: what the event shows; the link stays in the note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The link, or a redirect, points where downloads may not go.
    #[error("not downloaded: {0}")]
    NotAllowed(String),
    /// Over `files.max_bytes`.
    #[error("too big: {0}")]
    TooBig(String),
    /// Not an accepted type.
    #[error("not an accepted file type: {0}")]
    WrongType(String),
    /// The file host did not deliver it.
    #[error("download failed: {0}")]
    Failed(String),
}

impl Refusal {
    /// The reason alone, without what kind of refusal it is.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::NotAllowed(r)
            | Refusal::TooBig(r)
            | Refusal::WrongType(r)
            | Refusal::Failed(r) => r,
        }
    }
}
