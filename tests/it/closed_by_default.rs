//! Closed by default: every refusal that keeps development secrets, placeholders, short tokens
//! and the ops endpoints away from a reachable server, each through the real binary with
//! nothing inherited from the test's environment, and the configurations that pass beside them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{formbridge_bin, spawn_until_listening};

/// A token long enough for production (40 characters).
const STRONG: &str = "5b1e0c7a9d3f4e8b2a6c1d0e9f8a7b6c5d4e3f2a";

/// `formbridge <args>` in `workdir` with only `env` set.
fn formbridge(workdir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(formbridge_bin());
    cmd.args(args).env_clear().current_dir(workdir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// What a production deployment sets: a strong admin token and Jotform token, the ops address,
/// a store in `dir`; `changes` replace or add variables (an empty value removes one).
fn production_env<'a>(store: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("FORMBRIDGE_ENV", "production"),
        ("FORMBRIDGE__SERVER__ADDR", "0.0.0.0:8080"),
        ("FORMBRIDGE__SERVER__OPS_ADDR", "127.0.0.1:9090"),
        ("FORMBRIDGE__STORE__URL", store),
        ("FORMBRIDGE__ADMIN__TOKEN", STRONG),
        ("FORMBRIDGE__SOURCES__JOTFORM__SECRET", STRONG),
        (
            "FORMBRIDGE__GHL__TOKEN",
            "pit-7d1c5e3a-2b9f-4a6d-8e0c-1f2a3b4c5d6e",
        ),
        ("FORMBRIDGE__GHL__LOCATION_ID", "ve9EIpDC2fIhXHlNfJvE"),
    ];
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if !value.is_empty() {
            env.push((key, value));
        }
    }
    env
}

/// `check-config` in production with `changes`: (exit code, stdout, stderr).
fn check_production(changes: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("fb.db").display());
    let out = formbridge(
        dir.path(),
        &["check-config"],
        &production_env(&store, changes),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts `changes` are refused in production naming `key`, with `hint` in the message and
/// without echoing `echo` (the refused value, when it is a secret).
fn assert_refused(changes: &[(&str, &str)], key: &str, hint: &str) {
    let (code, out, err) = check_production(changes);
    assert_eq!(code, Some(2), "{changes:?} accepted: {out}{err}");
    assert!(err.contains(&format!("`{key}`")), "{changes:?}: {err}");
    assert!(err.contains(hint), "{changes:?}: {err}");
}

#[test]
fn a_complete_production_configuration_is_accepted() {
    let (code, out, err) = check_production(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(!out.contains(STRONG), "secrets masked: {out}");
}

#[test]
fn production_refuses_placeholders_naming_the_key() {
    for (var, value, key) in [
        ("FORMBRIDGE__ADMIN__TOKEN", "change-me", "admin.token"),
        (
            "FORMBRIDGE__SOURCES__JOTFORM__SECRET",
            "change-me",
            "sources.jotform.secret",
        ),
        ("FORMBRIDGE__GHL__TOKEN", "pit-change-me", "ghl.token"),
        (
            "FORMBRIDGE__ALERTS__WEBHOOK_URL",
            "https://hooks.slack.com/services/…",
            "alerts.webhook_url",
        ),
    ] {
        assert_refused(&[(var, value)], key, "placeholder");
        let (_, _, err) = check_production(&[(var, value)]);
        assert!(!err.contains(value), "the value is not echoed: {err}");
    }
    assert_refused(
        &[("FORMBRIDGE__GHL__LOCATION_ID", "change-me")],
        "ghl.location_id",
        "placeholder",
    );
    // Compose builds the store URL from POSTGRES_PASSWORD.
    assert_refused(
        &[(
            "FORMBRIDGE__STORE__URL",
            "postgres://formbridge:change-me@postgres:5432/formbridge",
        )],
        "store.url",
        "POSTGRES_PASSWORD",
    );
}

#[test]
fn production_refuses_short_tokens_naming_the_key() {
    let short = "0123456789abcdef0123456789abcde"; // 31 characters
    assert_refused(
        &[("FORMBRIDGE__ADMIN__TOKEN", "x")],
        "admin.token",
        "at least 32",
    );
    assert_refused(
        &[("FORMBRIDGE__SOURCES__JOTFORM__SECRET", short)],
        "sources.jotform.secret",
        "is 31 characters",
    );
    // 32 characters pass; an HMAC key is the tool's to choose, its length is not ours to set.
    let (code, _, err) = check_production(&[
        (
            "FORMBRIDGE__SOURCES__JOTFORM__SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
        ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", "short-hmac-key"),
        ("FORMBRIDGE__SOURCES__DRIPJOBS__AUTH", "hmac"),
    ]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn production_refuses_ops_endpoints_on_the_public_address_unless_told() {
    assert_refused(
        &[("FORMBRIDGE__SERVER__OPS_ADDR", "")],
        "server.ops_addr",
        "FORMBRIDGE__SERVER__PUBLIC_OPS=true",
    );
    let (code, _, err) = check_production(&[
        ("FORMBRIDGE__SERVER__OPS_ADDR", ""),
        ("FORMBRIDGE__SERVER__PUBLIC_OPS", "true"),
    ]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn production_refuses_unauthenticated_sources_unless_the_risk_is_named() {
    assert_refused(
        &[("FORMBRIDGE__SOURCES__POWR__AUTH", "none")],
        "sources.powr.auth",
        "sources.powr.allow_unauthenticated = true",
    );
    let (code, _, err) = check_production(&[
        ("FORMBRIDGE__SOURCES__POWR__AUTH", "none"),
        ("FORMBRIDGE__SOURCES__POWR__ALLOW_UNAUTHENTICATED", "true"),
        // A list from the environment: comma-separated.
        (
            "FORMBRIDGE__SOURCES__POWR__ALLOW_FROM",
            "203.0.113.0/24, 2001:db8::/32",
        ),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // The agent view is never served without authentication, named risk or not.
    assert_refused(
        &[
            ("FORMBRIDGE__SOURCES__JIVOCHAT__AUTH", "none"),
            (
                "FORMBRIDGE__SOURCES__JIVOCHAT__ALLOW_UNAUTHENTICATED",
                "true",
            ),
        ],
        "sources.jivochat.agent_view",
        "agent_view = false",
    );
    assert_refused(
        &[(
            "FORMBRIDGE__SOURCES__JOTFORM__ALLOW_FROM",
            "10.0.0.0/8,intranet",
        )],
        "sources.jotform.allow_from",
        "`intranet` is not an IP network",
    );
}

/// A checkout: the repository's `config/` (with `local.toml`) in the working folder.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    for file in ["default.toml", "local.toml"] {
        std::fs::copy(crate::common::config_dir().join(file), config.join(file)).unwrap();
    }
    dir
}

#[test]
fn serve_in_a_checkout_with_no_environment_refuses_development_secrets_on_a_public_address() {
    let dir = checkout();
    let store = format!("sqlite://{}", dir.path().join("fb.db").display());
    let out = formbridge(
        dir.path(),
        &["serve"],
        &[("FORMBRIDGE__STORE__URL", store.as_str())],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("development secret"), "{err}");
    assert!(err.contains("0.0.0.0:8080"), "names the address: {err}");
    assert!(err.contains("FORMBRIDGE_ENV"), "says what to set: {err}");
    assert!(!err.contains("local-admin-token"), "not echoed: {err}");
    assert!(
        !dir.path().join("fb.db").exists(),
        "nothing was opened before the refusal"
    );
    // check-config says the same.
    let out = formbridge(
        dir.path(),
        &["check-config"],
        &[("FORMBRIDGE__STORE__URL", store.as_str())],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn development_secrets_serve_on_loopback_or_with_an_explicit_local_environment() {
    let dir = checkout();
    let store = format!("sqlite://{}", dir.path().join("fb.db").display());
    // Loopback, no FORMBRIDGE_ENV: the quick start works.
    let mut cmd = Command::new(formbridge_bin());
    cmd.arg("serve")
        .env_clear()
        .current_dir(dir.path())
        .env("FORMBRIDGE__STORE__URL", &store)
        .env("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0")
        .env("FORMBRIDGE__TELEMETRY__LOG_FORMAT", "json");
    let (mut child, listening) = spawn_until_listening(cmd);
    assert!(listening["addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    child.kill().unwrap();
    child.wait().unwrap();
    // FORMBRIDGE_ENV=local said out loud: accepted on every address.
    let out = formbridge(
        dir.path(),
        &["check-config"],
        &[
            ("FORMBRIDGE_ENV", "local"),
            ("FORMBRIDGE__STORE__URL", store.as_str()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
