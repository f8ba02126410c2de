//! The client address of a request, and the source allow-lists (`sources.<name>.allow_from`)
//! checked against it.
//!
//! The client is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it is
//! the address `server.trusted_proxy_header` names (for a comma-separated list such as
//! `x-forwarded-for`, the right-most entry that is not itself a trusted proxy — the left part is
//! whatever the client chose to send). No header is believed by default.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::settings::{parse_client_address, parse_net, ServerSettings};

/// How the client address of a request is found.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    /// The header a trusted proxy writes; `None`: the TCP peer is the client.
    header: Option<HeaderName>,
    proxies: Vec<IpNet>,
}

impl ClientAddress {
    /// From `server.trusted_proxy_header` and `server.trusted_proxies` (checked at load; an
    /// entry that does not parse is left out).
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            header: server
                .trusted_proxy_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.trim().as_bytes()).ok()),
            proxies: server
                .trusted_proxies
                .iter()
                .filter_map(|p| parse_net(p).ok())
                .collect(),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with `headers`; `None` when it cannot be told (no
    /// peer address, or a trusted proxy's header holds something that is not an address).
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        let Some(header) = self.header.as_ref().filter(|_| self.trusts(peer)) else {
            return Some(peer);
        };
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all(header) {
            entries.extend(value.to_str().ok()?.split(','));
        }
        for entry in entries.iter().rev() {
            let ip = parse_client_address(entry)?;
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        // Every entry is a trusted proxy, or the proxy sent no header: the peer is the client.
        Some(peer)
    }
}

/// Whether `client` may deliver to a source with `allow_from` (empty: anyone).
pub fn allowed(allow_from: &[IpNet], client: Option<IpAddr>) -> bool {
    allow_from.is_empty() || client.is_some_and(|ip| allow_from.iter().any(|n| n.contains(&ip)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| parse_net(n).unwrap()).collect()
    }

    fn behind(proxies: &[&str]) -> ClientAddress {
        ClientAddress {
            header: Some(HeaderName::from_static("x-forwarded-for")),
            proxies: nets(proxies),
        }
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn without_a_trusted_proxy_the_peer_is_the_client_whatever_the_header_says() {
        let none = ClientAddress::default();
        let headers = forwarded("198.51.100.7");
        assert_eq!(
            none.resolve(peer("203.0.113.9"), &headers),
            "203.0.113.9".parse().ok()
        );
        let other = behind(&["10.0.0.0/8"]);
        assert_eq!(
            other.resolve(peer("203.0.113.9"), &headers),
            "203.0.113.9".parse().ok()
        );
        assert_eq!(none.resolve(None, &headers), None);
    }

    #[test]
    fn from_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let proxy = behind(&["10.0.0.0/8"]);
        // The client wrote a fake first entry; the proxies appended the real one.
        let headers = forwarded("192.0.2.1, 198.51.100.7, 10.0.0.2");
        assert_eq!(
            proxy.resolve(peer("10.0.0.1"), &headers),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(
            proxy.resolve(peer("::ffff:10.0.0.1"), &forwarded("198.51.100.7:5000")),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(
            proxy.resolve(peer("10.0.0.1"), &HeaderMap::new()),
            "10.0.0.1".parse().ok()
        );
        assert_eq!(proxy.resolve(peer("10.0.0.1"), &forwarded("unknown")), None);
    }

    #[test]
    fn an_allow_list_admits_its_networks_only() {
        let list = nets(&["198.51.100.0/24", "2001:db8::/32"]);
        assert!(allowed(&list, "198.51.100.7".parse().ok()));
        assert!(allowed(&list, "2001:db8::1".parse().ok()));
        assert!(!allowed(&list, "203.0.113.9".parse().ok()));
        assert!(!allowed(&list, None));
        assert!(allowed(&[], None));
    }
}
