//! Who may deliver, and what an unauthenticated source may do: the client-address lists
//! (`sources.<name>.allow_from`, `server.trusted_proxies`), the proxy header trusted to name the
//! client (`server.trusted_proxy_header`), and the refusals of `auth = "none"` — parsed and
//! checked at start, each error naming its key.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::{AuthMode, Settings, SettingsError, SourceSettings, ENV_SELECTOR, PRODUCTION};

/// What the agent view may show beyond the default card (name, link, tags, open tasks):
/// the values of `sources.<name>.agent_view_fields`.
pub const AGENT_VIEW_FIELDS: &[&str] = &[OTHER_IDENTITY, NOTE];
/// The contact's phone when the visitor was looked up by email, and its email when looked up by
/// phone.
pub const OTHER_IDENTITY: &str = "other_identity";
/// The text of the contact's latest note.
pub const NOTE: &str = "note";

/// An IP network in CIDR form (`203.0.113.0/24`, `2001:db8::/32`) or one address
/// (`203.0.113.7`, taken as `/32` or `/128`). Host bits are cleared (`10.1.2.3/8` is
/// `10.0.0.0/8`).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("`{text}` is not an IP network (CIDR such as 203.0.113.0/24) or an IP address")
    })
}

/// Every entry of `list` parsed with [`parse_net`]; an error names `key`.
pub fn parse_nets(key: &str, list: &[String]) -> Result<Vec<IpNet>, SettingsError> {
    list.iter()
        .map(|entry| parse_net(entry).map_err(|e| SettingsError::invalid(key, e)))
        .collect()
}

/// An address as a proxy header writes it: `203.0.113.7`, `2001:db8::1`, or with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
pub fn parse_client_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// A list given as a TOML array, or as one comma-separated string (what an environment variable
/// such as `FORMBRIDGE__SOURCES__JIVOCHAT__ALLOW_FROM=203.0.113.0/24,198.51.100.7` carries).
pub fn string_or_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(list) => list,
    })
}

impl Settings {
    /// `server.trusted_proxy_header` and `server.trusted_proxies`: both or neither, a valid
    /// header name, networks that parse.
    pub(super) fn validate_trusted_proxies(&self) -> Result<(), SettingsError> {
        let server = &self.server;
        parse_nets("server.trusted_proxies", &server.trusted_proxies)?;
        match (
            &server.trusted_proxy_header,
            server.trusted_proxies.is_empty(),
        ) {
            (Some(header), false) => {
                if axum::http::HeaderName::from_bytes(header.trim().as_bytes()).is_err() {
                    return Err(SettingsError::invalid(
                        "server.trusted_proxy_header",
                        "not a valid HTTP header name (e.g. x-forwarded-for or x-real-ip)",
                    ));
                }
                Ok(())
            }
            (Some(_), true) => Err(SettingsError::invalid(
                "server.trusted_proxies",
                "must list the proxies (CIDRs) whose server.trusted_proxy_header is believed; \
                 anyone else could set the header and pick their address",
            )),
            (None, false) => Err(SettingsError::invalid(
                "server.trusted_proxy_header",
                "must name the header the server.trusted_proxies set (e.g. x-forwarded-for)",
            )),
            (None, true) => Ok(()),
        }
    }

    /// A source's `allow_from` parses; `agent_view_fields` are known; `agent_view_per_minute`
    /// is at least 1; the agent view is never served without authentication.
    pub(super) fn validate_source_access(
        &self,
        name: &str,
        source: &SourceSettings,
        agent_view: bool,
    ) -> Result<(), SettingsError> {
        let key = |field: &str| format!("sources.{name}.{field}");
        parse_nets(&key("allow_from"), &source.allow_from)?;
        for field in &source.agent_view_fields {
            if !AGENT_VIEW_FIELDS.contains(&field.as_str()) {
                return Err(SettingsError::invalid(
                    key("agent_view_fields"),
                    format!(
                        "unknown field `{field}`; the card always shows name, link, tags and open \
                         tasks, and may add: {}",
                        AGENT_VIEW_FIELDS.join(", ")
                    ),
                ));
            }
        }
        if source.agent_view_per_minute == 0 {
            return Err(SettingsError::invalid(
                key("agent_view_per_minute"),
                "must be at least 1 (to show no card, set agent_view = false)",
            ));
        }
        if agent_view && source.auth == AuthMode::None {
            return Err(SettingsError::invalid(
                key("agent_view"),
                format!(
                    "is on with auth = \"none\": anyone who can reach the server could look up any \
                     GHL contact by email or phone; give the source a secret (auth = \"token\", \
                     FORMBRIDGE__SOURCES__{}__SECRET) or set agent_view = false",
                    name.to_uppercase()
                ),
            ));
        }
        Ok(())
    }
}

/// With `FORMBRIDGE_ENV=production`, a served source with `auth = "none"` needs
/// `allow_unauthenticated = true`: anyone who finds the URL can then store deliveries and
/// create GHL contacts.
pub(super) fn refuse_unauthenticated_sources(settings: &Settings) -> Result<(), SettingsError> {
    for (name, source) in &settings.sources {
        if source.is_enabled() && source.auth == AuthMode::None && !source.allow_unauthenticated {
            return Err(SettingsError::invalid(
                format!("sources.{name}.auth"),
                format!(
                    "is \"none\": with {ENV_SELECTOR}={PRODUCTION} anyone who finds \
                     /hooks/{name} could store deliveries and create GHL contacts; give it a \
                     secret (auth = \"token\"), or accept that risk with \
                     sources.{name}.allow_unauthenticated = true (and consider \
                     sources.{name}.allow_from)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses_parse_and_garbage_does_not() {
        assert_eq!(
            parse_net("10.1.2.3/8").ok(),
            "10.0.0.0/8".parse::<IpNet>().ok()
        );
        assert_eq!(
            parse_net(" 203.0.113.7 ").ok(),
            "203.0.113.7/32".parse::<IpNet>().ok()
        );
        assert_eq!(
            parse_net("2001:db8::/32").ok(),
            "2001:db8::/32".parse::<IpNet>().ok()
        );
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn client_addresses_parse_with_or_without_a_port() {
        let v4: IpAddr = [203, 0, 113, 7].into();
        assert_eq!(parse_client_address("203.0.113.7"), Some(v4));
        assert_eq!(parse_client_address(" 203.0.113.7:4711"), Some(v4));
        assert_eq!(parse_client_address("::ffff:203.0.113.7"), Some(v4));
        assert!(parse_client_address("[2001:db8::1]:80").is_some());
        assert_eq!(parse_client_address("unknown"), None);
    }
}
