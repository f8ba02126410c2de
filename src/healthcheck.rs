//! `formbridge healthcheck`: asks the running server's health endpoint on this machine and
//! exits 0 when it answers 2xx, else 1 — a container HEALTHCHECK that needs no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::settings::Settings;

/// Longest wait for the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Where to ask: `server.addr`, with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
pub fn target(settings: &Settings, path: &str) -> String {
    let mut addr: SocketAddr = settings.server.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    format!("http://{addr}{path}")
}

/// GETs `url`; exit 0 on 2xx, 1 otherwise, saying why on stderr.
pub async fn run(url: &str) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("formbridge healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("{url}: {}", response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("formbridge healthcheck: {url} answered {status} {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("formbridge healthcheck: {url}: {}", e.without_url());
            ExitCode::FAILURE
        }
    }
}
