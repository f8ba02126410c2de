//! Where a file may be downloaded from and what it may be: the host allow-list (https on a
//! public address, unless the host is one of `[files].private_hosts`), the address check every
//! DNS answer passes, and the type allow-list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::settings::FileSettings;
use super::Refusal;

/// The hosts one download may reach: the step's (the tool's and `mapping.file_hosts`) and
/// `[files]`'s.
#[derive(Debug, Clone)]
pub(super) struct HostPolicy<'a> {
    pub(super) step_hosts: &'a [String],
    pub(super) settings: &'a FileSettings,
}

impl HostPolicy<'_> {
    /// Whether `url` may be fetched: an allowed host, over https on its default port (a private
    /// host: any scheme of http(s), any port its entry allows), and not an IP literal of a
    /// private address unless the host is a private one.
    pub(super) fn check(&self, url: &url::Url) -> Result<(), Refusal> {
        let host = url
            .host_str()
            .ok_or_else(|| Refusal::NotAllowed(format!("`{url}` has no host")))?
            .to_ascii_lowercase();
        let port = url.port_or_known_default();
        if self.is_private_host(&host, port) {
            return match url.scheme() {
                "http" | "https" => Ok(()),
                other => Err(Refusal::NotAllowed(format!(
                    "scheme `{other}` (http or https only)"
                ))),
            };
        }
        if url.scheme() != "https" {
            return Err(Refusal::NotAllowed(format!(
                "{host} over {} (https only, except for files.private_hosts)",
                url.scheme()
            )));
        }
        let listed = self
            .step_hosts
            .iter()
            .chain(&self.settings.hosts)
            .any(|h| h.eq_ignore_ascii_case(&host));
        if !listed {
            return Err(Refusal::NotAllowed(format!(
                "host {host} is not one of the tool's file hosts, mapping.file_hosts or files.hosts"
            )));
        }
        if url.port().is_some_and(|p| p != 443) {
            return Err(Refusal::NotAllowed(format!(
                "{host} on port {} (443 only, except for files.private_hosts)",
                port.unwrap_or_default()
            )));
        }
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
            let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
            if ip.is_some_and(|ip| !is_public(ip)) {
                return Err(Refusal::NotAllowed(format!(
                    "{host} is a private address (allowed only through files.private_hosts)"
                )));
            }
        }
        Ok(())
    }

    /// Whether `host` (on `port`) is one of `[files].private_hosts`.
    pub(super) fn is_private_host(&self, host: &str, port: Option<u16>) -> bool {
        private_host_listed(self.settings, host, port)
    }
}

/// Whether `host` on `port` is listed in `private_hosts` (`name` for any port, `name:port`).
pub(super) fn private_host_listed(settings: &FileSettings, host: &str, port: Option<u16>) -> bool {
    settings
        .private_hosts
        .iter()
        .any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                h.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == port
            }
            _ => entry.eq_ignore_ascii_case(host),
        })
}

/// Whether an address is reachable on the public internet (not loopback, private, link-local
/// — the cloud metadata service —, carrier-grade NAT, unspecified, broadcast, multicast or
/// documentation).
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || ip.to_ipv4().is_some_and(|v4| !public_v4(v4)))
}

/// Whether a download of this type (its `Content-Type`) and name is accepted: a listed type, or
/// a type that says nothing (`application/octet-stream`, none) and a listed extension.
pub(super) fn type_allowed(
    settings: &FileSettings,
    content_type: Option<&str>,
    file_name: &str,
) -> Result<(), Refusal> {
    let essence = content_type
        .and_then(|t| t.parse::<mime::Mime>().ok())
        .map(|m| m.essence_str().to_ascii_lowercase());
    let generic = matches!(
        essence.as_deref(),
        None | Some("application/octet-stream" | "binary/octet-stream")
    );
    if let Some(essence) = essence.as_deref().filter(|_| !generic) {
        if settings
            .content_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(essence))
        {
            return Ok(());
        }
        return Err(Refusal::WrongType(format!(
            "type {essence} is not one of files.content_types"
        )));
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if settings
        .extensions
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&extension))
    {
        Ok(())
    } else {
        Err(Refusal::WrongType(format!(
            "untyped file `{file_name}` whose extension is not one of files.extensions"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_check(url: &str, private: &[&str]) -> Result<(), Refusal> {
        let settings = FileSettings {
            private_hosts: private.iter().map(|s| (*s).to_owned()).collect(),
            hosts: vec!["10.1.2.3".to_owned()],
            ..FileSettings::default()
        };
        let step_hosts = vec!["www.jotform.com".to_owned()];
        let policy = HostPolicy {
            step_hosts: &step_hosts,
            settings: &settings,
        };
        policy.check(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn only_listed_hosts_over_https_and_private_ones_only_when_named() {
        assert!(policy_check("https://www.jotform.com/uploads/a/b/c/x.pdf", &[]).is_ok());
        assert!(policy_check("https://WWW.JOTFORM.COM/x.pdf", &[]).is_ok());
        assert!(policy_check("http://www.jotform.com/x.pdf", &[]).is_err());
        assert!(policy_check("https://www.jotform.com:8443/x.pdf", &[]).is_err());
        assert!(policy_check("https://evil.example.com/x.pdf", &[]).is_err());
        assert!(policy_check("https://www.jotform.com.evil.example/x.pdf", &[]).is_err());
        // Listed, but a private address: only through private_hosts.
        assert!(policy_check("https://10.1.2.3/x.pdf", &[]).is_err());
        assert!(policy_check("http://127.0.0.1:9999/x.pdf", &[]).is_err());
        assert!(policy_check("http://127.0.0.1:9999/x.pdf", &["127.0.0.1"]).is_ok());
        assert!(policy_check("http://127.0.0.1:9999/x.pdf", &["127.0.0.1:9999"]).is_ok());
        assert!(policy_check("http://127.0.0.1:9998/x.pdf", &["127.0.0.1:9999"]).is_err());
        assert!(policy_check("file:///etc/passwd", &["127.0.0.1"]).is_err());
    }

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["104.16.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn types_are_checked_by_content_type_else_by_extension() {
        let s = FileSettings::default();
        assert!(type_allowed(&s, Some("application/pdf"), "x.bin").is_ok());
        assert!(type_allowed(&s, Some("image/PNG; charset=x"), "x").is_ok());
        assert!(type_allowed(&s, Some("text/html"), "x.pdf").is_err());
        assert!(type_allowed(&s, Some("application/octet-stream"), "x.pdf").is_ok());
        assert!(type_allowed(&s, None, "x.exe").is_err());
    }
}
