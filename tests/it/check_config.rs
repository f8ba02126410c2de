//! `formbridge check-config`: the effective configuration with secrets masked, and a refusal
//! that names the key for a bad value.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check_config(env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_formbridge"));
    cmd.arg("check-config")
        .env("FORMBRIDGE_CONFIG_DIR", crate::common::config_dir())
        .env("FORMBRIDGE_ENV", "test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_the_effective_config_with_secrets_masked() {
    let (code, out, _) = check_config(&[
        ("FORMBRIDGE__SOURCES__JOTFORM__SECRET", "very-secret-token"),
        ("FORMBRIDGE__GHL__TOKEN", "pit-123-secret"),
        (
            "FORMBRIDGE__STORE__URL",
            "postgres://app:hunter2@db/formbridge",
        ),
        ("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:9999"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("127.0.0.1:9999"),
        "environment overrides apply: {out}"
    );
    for secret in ["very-secret-token", "pit-123-secret", "hunter2"] {
        assert!(!out.contains(secret), "{secret} printed");
    }
    assert!(out.contains("********"));
}

#[test]
fn refuses_a_bad_value_naming_the_key() {
    let (code, _, err) = check_config(&[("FORMBRIDGE__DISPATCH__WORKERS", "0")]);
    assert_eq!(code, 2);
    assert!(err.contains("dispatch.workers"), "{err}");
    let (code, _, err) = check_config(&[
        ("FORMBRIDGE__SOURCES__JOTFORM__AUTH", "hmac"),
        ("FORMBRIDGE__SOURCES__JOTFORM__ENABLED", "true"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("sources.jotform.secret"), "{err}");
    let (code, _, err) = check_config(&[("FORMBRIDGE__STORE__URL", "mysql://x")]);
    assert_eq!(code, 2);
    assert!(err.contains("store.url"), "{err}");
}

#[test]
fn refuses_values_that_would_fail_every_delivery_naming_the_key() {
    for (env, key) in [
        (("FORMBRIDGE__GHL__LOCATION_ID", ""), "ghl.location_id"),
        (("FORMBRIDGE__GHL__LOCATION_ID", "  "), "ghl.location_id"),
        (
            ("FORMBRIDGE__TELEMETRY__LOG_FILTER", "formbridge=loud"),
            "telemetry.log_filter",
        ),
        (
            ("FORMBRIDGE__SERVER__MAX_CONNECTIONS", "0"),
            "server.max_connections",
        ),
        (
            ("FORMBRIDGE__SERVER__HEADER_READ_TIMEOUT", "0s"),
            "server.header_read_timeout",
        ),
        (
            ("FORMBRIDGE__SERVER__BODY_READ_TIMEOUT", "0s"),
            "server.body_read_timeout",
        ),
        (
            ("FORMBRIDGE__SERVER__BODY_READ_TIMEOUT", "1h"),
            "server.body_read_timeout",
        ),
        (
            ("FORMBRIDGE__SERVER__MAX_CONNECTIONS_PER_CLIENT", "0"),
            "server.max_connections_per_client",
        ),
        (
            ("FORMBRIDGE__GHL__LATE_WRITE_WINDOW", "2h"),
            "ghl.late_write_window",
        ),
        (
            ("FORMBRIDGE__GHL__REQUEST_TIMEOUT", "0s"),
            "ghl.request_timeout",
        ),
    ] {
        let (code, out, err) = check_config(&[env]);
        assert_eq!(code, 2, "{env:?} accepted: {out}");
        assert!(err.contains(key), "{env:?}: {err}");
    }
    let (code, _, err) = check_config(&[
        ("FORMBRIDGE__GHL__LOCATIONS__EAST__LOCATION_ID", ""),
        ("FORMBRIDGE__GHL__LOCATIONS__EAST__TOKEN", "pit-east"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("ghl.locations.east.location_id"), "{err}");
    let (code, out, _) =
        check_config(&[("FORMBRIDGE__TELEMETRY__LOG_FILTER", "formbridge=debug,info")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn serve_warns_loudly_when_no_source_has_a_secret() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("fb.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_formbridge"))
        .arg("serve")
        .env_clear()
        .env("FORMBRIDGE_CONFIG_DIR", crate::common::config_dir())
        .env("FORMBRIDGE_ENV", "test")
        .env("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0")
        .env("FORMBRIDGE__STORE__URL", &store)
        .env("FORMBRIDGE__TELEMETRY__LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut warnings = Vec::new();
    for line in lines {
        let v: serde_json::Value = match serde_json::from_str(&line.unwrap()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["message"] == "formbridge listening" {
            break;
        }
        if v["level"] == "WARN" {
            warnings.push(v["message"].as_str().unwrap_or_default().to_owned());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no webhook source is served")
                && w.contains("FORMBRIDGE__SOURCES__")),
        "{warnings:?}"
    );
}

#[test]
fn delivery_limits_are_settable_and_a_bad_one_is_refused_naming_its_key() {
    for (var, value, key) in [
        (
            "FORMBRIDGE__SERVER__MAX_FORM_FIELDS",
            "0",
            "server.max_form_fields",
        ),
        (
            "FORMBRIDGE__SERVER__MAX_JSON_VALUES",
            "0",
            "server.max_json_values",
        ),
        (
            "FORMBRIDGE__SERVER__MAX_JSON_DEPTH",
            "129",
            "server.max_json_depth",
        ),
        (
            "FORMBRIDGE__DISPATCH__PREPARE_TIMEOUT",
            "0s",
            "dispatch.prepare_timeout",
        ),
    ] {
        let (code, _, err) = check_config(&[(var, value)]);
        assert_eq!(code, 2, "{var}={value}: {err}");
        assert!(err.contains(key), "{err}");
    }
    let (code, out, err) = check_config(&[
        ("FORMBRIDGE__SERVER__MAX_FORM_FIELDS", "250"),
        ("FORMBRIDGE__DISPATCH__PREPARE_TIMEOUT", "750ms"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"max_form_fields\": 250"), "{out}");
    assert!(out.contains("750ms"), "{out}");
}
