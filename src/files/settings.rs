//! `[files]`: the limits on downloading file answers for `[[mapping.files]]` (size, type, time,
//! hosts beyond the tools' own), checked at start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[files]`. Every key has a default; nothing needs writing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSettings {
    /// Largest file downloaded, in bytes: refused at once when its `Content-Length` says more,
    /// cut off when its bytes run past it. Default 10 MiB (GHL takes at most 50 MB).
    pub max_bytes: u64,
    /// Longest one file's download, and its upload, may take (they stream together; the
    /// event's lease is renewed meanwhile). Default `2m`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Tries at getting a download's answer (a connection failure, a 5xx or 429 from the file
    /// host) before the file is given up. Default 3.
    pub download_attempts: u32,
    /// Redirects followed per download, each only to an allowed host. Default 5.
    pub max_redirects: u32,
    /// More https hosts every source may download from, beside each tool's own file servers
    /// and `mapping.file_hosts`. Default none.
    pub hosts: Vec<String>,
    /// Hosts (`name` or `name:port`) allowed over plain http and at private, loopback or
    /// link-local addresses: an internal file server, or a test's. Default none: downloads go
    /// only to public addresses over https.
    pub private_hosts: Vec<String>,
    /// MIME types accepted (the `Content-Type` of the download). Default: the types GHL's
    /// upload takes (PDF, DOC/DOCX, JPG, PNG, GIF, CSV, XLS/XLSX, MP4, MPEG, ZIP, RAR, TXT, SVG).
    pub content_types: Vec<String>,
    /// File name extensions accepted when the download's type says nothing
    /// (`application/octet-stream` or none). Default: those of `content_types`.
    pub extensions: Vec<String>,
}

impl Default for FileSettings {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        Self {
            max_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(120),
            download_attempts: 3,
            max_redirects: 5,
            hosts: Vec::new(),
            private_hosts: Vec::new(),
            content_types: list(&[
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "image/jpeg",
                "image/png",
                "image/gif",
                "text/csv",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "video/mp4",
                "video/mpeg",
                "application/zip",
                "application/x-zip-compressed",
                "application/vnd.rar",
                "application/x-rar-compressed",
                "text/plain",
                "image/svg+xml",
            ]),
            extensions: list(&[
                "pdf", "doc", "docx", "jpg", "jpeg", "png", "gif", "csv", "xls", "xlsx", "mp4",
                "mpeg", "zip", "rar", "txt", "svg",
            ]),
        }
    }
}

/// Why `[files]` was refused; names the key.
#[derive(Debug, thiserror::Error)]
#[error("files.{key}: {message}")]
pub struct FileConfigError {
    pub key: String,
    pub message: String,
}

impl FileSettings {
    /// Checks every limit and host.
    pub fn validate(&self) -> Result<(), FileConfigError> {
        let invalid = |key: String, message: &str| FileConfigError {
            key,
            message: message.to_owned(),
        };
        if self.max_bytes == 0 {
            return Err(invalid("max_bytes".into(), "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout".into(), "must be greater than 0"));
        }
        if self.download_attempts == 0 {
            return Err(invalid("download_attempts".into(), "must be at least 1"));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if !is_host_name(host) {
                return Err(invalid(
                    format!("hosts[{i}]"),
                    "must be a host name alone, like `files.example.com` (no scheme, port or path)",
                ));
            }
        }
        for (i, entry) in self.private_hosts.iter().enumerate() {
            let (host, port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (entry.as_str(), None),
            };
            if !is_host_name(host) || port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err(invalid(
                    format!("private_hosts[{i}]"),
                    "must be `host` or `host:port`, like `127.0.0.1` or `files.internal:8080`",
                ));
            }
        }
        if self
            .content_types
            .iter()
            .any(|t| t.parse::<mime::Mime>().is_err())
        {
            return Err(invalid(
                "content_types".into(),
                "every entry must be a MIME type like `application/pdf`",
            ));
        }
        Ok(())
    }
}

/// A bare host name or IP address (no scheme, port, path or user).
fn is_host_name(host: &str) -> bool {
    !host.is_empty() && !host.contains(['/', ':', '@', ' ']) && url::Host::parse(host).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_bad_values_name_their_key() {
        assert!(FileSettings::default().validate().is_ok());
        let bad = |s: FileSettings, key: &str| {
            let e = s.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
        };
        bad(
            FileSettings {
                max_bytes: 0,
                ..FileSettings::default()
            },
            "max_bytes",
        );
        bad(
            FileSettings {
                hosts: vec!["https://x.example.com".into()],
                ..FileSettings::default()
            },
            "hosts[0]",
        );
        bad(
            FileSettings {
                private_hosts: vec!["127.0.0.1:http".into()],
                ..FileSettings::default()
            },
            "private_hosts[0]",
        );
        assert!(FileSettings {
            private_hosts: vec!["127.0.0.1".into(), "files.internal:8080".into()],
            ..FileSettings::default()
        }
        .validate()
        .is_ok());
    }
}
