//! `formbridge check-config`: the effective configuration with secrets masked, and a refusal
//! that names the key for a bad value.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn check_config(env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_formbridge"));
    cmd.arg("check-config")
        .env("FORMBRIDGE_CONFIG_DIR", common::config_dir())
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
