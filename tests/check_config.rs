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
