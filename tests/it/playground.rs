//! The mapping playground on real stores: the comparison engine (SQLite and PostgreSQL), the
//! admin API over real HTTP (running mapping, compare, fields, refusals), mapping files in the
//! config folder, and `formbridge map --compare`'s output and exit codes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use formbridge::domain::{EventId, SourceName};
use formbridge::playground::{self, Selection};
use formbridge::runtime::SourceRuntimes;
use formbridge::settings::{ConfigSource, Settings};
use formbridge::store::{self, EventStatus, NewEvent, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::admin::{make_dead, post_powr};
use crate::common::{
    config_dir_with, formbridge_bin, settings_with_toml, spawn_with, test_settings, TestApp, SECRET,
};

const TOKEN: &str = "playground-test-token";

/// A lead whose phone is under a key detection does not know: the default mapping finds no
/// email or phone, so it is dead-lettered.
fn phone_only_lead() -> Value {
    json!({"Name": "Pat Doe", "Best number": "(415) 555-0100"})
}

/// The candidate every test tries: the running mapping plus the phone's answer.
const PHONE_FIELD: &str = "\n[sources.powr.mapping.fields]\nphone = \"Best number\"\n";

/// Stores a POWR delivery directly and returns its id.
async fn store_lead(store: &dyn Store, body: &Value, key: &str) -> EventId {
    let ingested = store
        .insert_event(NewEvent {
            source: SourceName::parse("powr").unwrap(),
            dedupe_key: key.to_owned(),
            content_hash: None,
            content_type: Some("application/json".to_owned()),
            headers: Vec::new(),
            body: body.to_string().into_bytes().into(),
            received_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    ingested.id()
}

/// A good lead, a phone-only dead letter; the engine says the candidate fixes the dead letter
/// (its phone appears in the plan) and leaves the good lead as it was.
async fn engine_scenario(store: Arc<dyn Store>, settings: &Settings) {
    let good = store_lead(
        store.as_ref(),
        &json!({"Email": "good@example.com", "Name": "Good Lead"}),
        "good",
    )
    .await;
    let dead = store_lead(store.as_ref(), &phone_only_lead(), "phone-only").await;
    make_dead(store.as_ref(), dead, "no contact in this submission").await;

    let runtimes = SourceRuntimes::compile(settings).unwrap();
    let powr = runtimes.get("powr").unwrap();
    let running = formbridge::mapping::file::to_text("powr", powr.mapping_config()).unwrap();
    let candidate = playground::check(powr, &format!("{running}{PHONE_FIELD}"));
    assert!(candidate.problems.is_empty(), "{:?}", candidate.problems);

    let events = playground::load(store.as_ref(), "powr", &Selection::Last(50))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let limits = settings.server.body_limits();
    let comparison = playground::compare(powr, &limits, &candidate, &events);
    assert_eq!(comparison.would_fix, vec![dead]);
    assert!(comparison.would_break.is_empty());
    let json = serde_json::to_value(&comparison).unwrap();
    let by_id = |id: EventId| {
        json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == id.0)
            .unwrap()
            .clone()
    };
    let fixed = by_id(dead);
    assert_eq!(fixed["verdict"], "fixes", "{fixed:#}");
    assert!(fixed["running"]["error"]
        .as_str()
        .unwrap()
        .contains("no contact"));
    let phone = fixed["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "contact.phone")
        .unwrap();
    assert_eq!(phone["change"], "added");
    assert_eq!(phone["section"], "contact");
    assert_eq!(phone["candidate"], "+14155550100");
    // The good lead keeps its plan but for its note, which now says the phone's answer is
    // missing from it.
    let kept = by_id(good);
    assert_eq!(kept["verdict"], "changed");
    let differences = kept["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{kept:#}");
    assert_eq!(differences[0]["path"], "notes[0]");
    assert!(differences[0]["candidate"]
        .as_str()
        .unwrap()
        .contains("mapping.fields.phone: no answer has the key"));

    // Only the dead letters.
    let dead_only = playground::load(store.as_ref(), "powr", &Selection::Dead(10))
        .await
        .unwrap();
    assert_eq!(dead_only.len(), 1);
    assert_eq!(dead_only[0].summary.status, EventStatus::Dead);
    // Explicit ids: another source's or an unknown id is left out.
    let chosen = playground::load(
        store.as_ref(),
        "powr",
        &Selection::Ids(vec![good.0, 999_999]),
    )
    .await
    .unwrap();
    assert_eq!(chosen.len(), 1);
    assert!(
        playground::load(store.as_ref(), "jotform", &Selection::Ids(vec![good.0]))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_engine_finds_the_dead_letters_a_candidate_fixes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path(), &[]);
    let store = store::open(&settings.store).await.unwrap();
    engine_scenario(store, &settings).await;
}

#[tokio::test]
async fn the_engine_finds_the_dead_letters_a_candidate_fixes_on_postgres() {
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path(), &[]);
    settings.store.url = db.url.clone();
    let store = store::open(&settings.store).await.unwrap();
    engine_scenario(store, &settings).await;
}

#[test]
fn every_problem_of_a_candidate_is_named_by_its_key_with_check_configs_message() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path(), &[]);
    let runtimes = SourceRuntimes::compile(&settings).unwrap();
    let powr = runtimes.get("powr").unwrap();
    let text = r#"
[sources.powr.mapping]
default_country = "US"

[sources.powr.mapping.fields]
phone = "Best number"

[[sources.powr.mapping.tasks]]
title = "Call {{first_name}}"
due_in = "2h"

[[sources.powr.mapping.tasks]]
title = "Call back"
due_in = "whenever"

[sources.powr.mapping.tags]
static = ["ok"]
colour = "blue"
"#;
    let candidate = playground::check(powr, text);
    let keys: Vec<&str> = candidate.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["sources.powr.mapping.tags.colour"],
        "shape first"
    );

    // Without the shape error: the compile error names the second task.
    let text = text.replace("colour = \"blue\"\n", "");
    let candidate = playground::check(powr, &text);
    let keys: Vec<&str> = candidate.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, vec!["sources.powr.mapping.tasks[1].due_in"]);
    // check-config (a mapping file in the config folder) refuses it with the same message.
    let config = config_dir_with(dir.path(), "");
    std::fs::create_dir_all(config.join("mappings")).unwrap();
    std::fs::write(config.join("mappings/powr.toml"), &text).unwrap();
    let served = [("sources.powr.secret", SECRET)];
    let err = Settings::load_without_env(&ConfigSource::named(&config, "test"), &served)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&candidate.problems[0].key), "{err}");
    assert!(err.contains(&candidate.problems[0].message), "{err}");

    // Two bad rules: both named, each with its own index.
    let two = text.replace("due_in = \"2h\"", "due_in = \"later\"");
    let candidate = playground::check(powr, &two);
    let keys: Vec<&str> = candidate.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "sources.powr.mapping.tasks[0].due_in",
            "sources.powr.mapping.tasks[1].due_in"
        ]
    );
}

#[test]
fn a_mapping_file_in_the_config_folder_replaces_the_sources_mapping() {
    let dir = tempfile::tempdir().unwrap();
    // The env file's tags are not merged into the file's mapping: the file is the mapping.
    let settings = settings_with_toml(
        dir.path(),
        "[sources.powr.mapping.tags]\nstatic = [\"from-env-file\"]\n",
        &[],
    );
    assert_eq!(
        settings.sources["powr"].mapping.tags.static_tags,
        ["from-env-file"]
    );
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("mappings")).unwrap();
    std::fs::write(config.join("mappings/powr.toml"), PHONE_FIELD).unwrap();
    let settings = Settings::load_without_env(&ConfigSource::named(&config, "test"), &[]).unwrap();
    let powr = &settings.sources["powr"].mapping;
    assert!(powr.tags.static_tags.is_empty());
    assert_eq!(powr.fields.len(), 1);
    // A file for a source that is not configured, or with other keys, is refused by key.
    std::fs::write(config.join("mappings/nosuch.toml"), "").unwrap();
    let err = Settings::load_without_env(&ConfigSource::named(&config, "test"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sources.nosuch"), "{err}");
    std::fs::remove_file(config.join("mappings/nosuch.toml")).unwrap();
    std::fs::write(
        config.join("mappings/powr.toml"),
        "[sources.powr]\nsecret = \"x\"\n",
    )
    .unwrap();
    let err = Settings::load_without_env(&ConfigSource::named(&config, "test"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sources.powr.secret"), "{err}");
}

async fn spawn_playground(toml: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_with_toml(dir.path(), toml, &[("admin.token", TOKEN)]);
    spawn_with(settings, dir).await
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `POST /admin/playground/powr/compare` with a JSON body.
async fn compare(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let path = "/admin/playground/powr/compare";
    call(app, "POST", path, Some(body.to_string().into_bytes())).await
}

#[tokio::test]
async fn the_admin_api_serves_the_running_mapping_a_comparison_and_the_fields() {
    let app = spawn_playground("").await;
    let good = post_powr(
        &app,
        &json!({"Email": "good@example.com", "Name": "Good Lead"}),
    )
    .await;
    let dead = post_powr(&app, &phone_only_lead()).await;
    make_dead(app.store.as_ref(), dead, "no contact").await;

    let (status, sources) = call(&app, "GET", "/admin/playground/sources", None).await;
    assert_eq!(status, 200);
    assert!(sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "powr"));

    let (status, running) = call(&app, "GET", "/admin/playground/powr/mapping", None).await;
    assert_eq!(status, 200, "{running}");
    assert_eq!(running["deploy_path"], "mappings/powr.toml");
    let text = running["toml"].as_str().unwrap();
    assert!(text.contains("[sources.powr.mapping"), "{text}");

    let candidate = format!("{text}{PHONE_FIELD}");
    let (status, cmp) = compare(
        &app,
        json!({"mapping": candidate, "dead": true, "last": 10}),
    )
    .await;
    assert_eq!(status, 200, "{cmp}");
    assert_eq!(cmp["would_fix"], json!([dead.0]));
    assert_eq!(cmp["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(cmp["counts"]["fixes"], 1);

    let (_, cmp) = compare(&app, json!({"mapping": candidate, "ids": [good.0, dead.0]})).await;
    assert_eq!(cmp["deliveries"].as_array().unwrap().len(), 2);

    // A candidate with a problem: the key, no plans compared.
    let bad = "[sources.powr.mapping]\non_missing_contact = \"maybe\"\n";
    let (status, cmp) = compare(&app, json!({ "mapping": bad })).await;
    assert_eq!(status, 200);
    assert_eq!(
        cmp["problems"][0]["key"],
        "sources.powr.mapping.on_missing_contact"
    );
    assert_eq!(cmp["deliveries"][0]["verdict"], "not_compared");

    // The fields: the phone under its own key, and a suggestion to paste.
    let (status, fields) = call(&app, "GET", "/admin/playground/powr/fields?last=20", None).await;
    assert_eq!(status, 200, "{fields}");
    assert_eq!(fields["deliveries"], 2);
    let best = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "Best number")
        .unwrap();
    assert_eq!(best["filled"], 1);
    assert_eq!(best["looks_like"], "phone");
    assert_eq!(fields["suggested"]["phone"], "Best number");
    assert_eq!(fields["suggested"]["email"], "Email");
    assert!(fields["suggested_toml"]
        .as_str()
        .unwrap()
        .contains("phone = \"Best number\""));

    // A configured secret in an answer is masked in what the playground shows, as in events.
    let leaky = json!({"Email": "leaky@example.com", "Message": format!("my key is {SECRET}")});
    post_powr(&app, &leaky).await;
    let (_, cmp) = compare(&app, json!({"mapping": candidate, "last": 1})).await;
    assert!(cmp.to_string().contains("********"), "{cmp}");
    assert!(!cmp.to_string().contains(SECRET), "{cmp}");
    let (_, fields) = call(&app, "GET", "/admin/playground/powr/fields?last=1", None).await;
    assert!(!fields.to_string().contains(SECRET), "{fields}");

    // Nothing changed: the dead letter is still dead, the running mapping the same.
    let (_, again) = call(&app, "GET", "/admin/playground/powr/mapping", None).await;
    assert_eq!(again["toml"], running["toml"]);
    let event = app.store.get_event(dead).await.unwrap().unwrap();
    assert_eq!(event.summary.status, EventStatus::Dead);
}

#[tokio::test]
async fn the_admin_api_refuses_bad_requests_clearly() {
    let app = spawn_playground("").await;
    let raw = |body: &[u8]| {
        let path = "/admin/playground/powr/compare";
        call(&app, "POST", path, Some(body.to_vec()))
    };
    let (status, body) = raw(b"{\"mapping\": \"\", \"last\": 0}").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("between 1 and 500"),
        "{body}"
    );
    let (status, _) = raw(b"{\"mapping\": \"\", \"last\": 501}").await;
    assert_eq!(status, 400);
    let (status, body) = raw(b"not json").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("mapping"),
        "{body}"
    );
    let (status, _) = raw(b"{\"mapping\": \"\", \"colour\": 1}").await;
    assert_eq!(status, 400);
    let big = json!({"mapping": "#".repeat(200 * 1024)})
        .to_string()
        .into_bytes();
    let (status, body) = raw(&big).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = call(&app, "GET", "/admin/playground/nosuch/mapping", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, "GET", "/admin/playground/powr/fields?last=x", None).await;
    assert_eq!(status, 400);
    let (status, _) = call(&app, "GET", "/admin/playground/powr/fields?lots=1", None).await;
    assert_eq!(status, 400);
    // Behind the token.
    let resp = app
        .client
        .get(format!("{}/admin/playground/powr/mapping", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// Runs `formbridge map --compare` on the app's store with the config folder `config`.
fn map_compare(app: &TestApp, config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(formbridge_bin())
        .arg("map")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FORMBRIDGE_CONFIG_DIR", config)
        .env("FORMBRIDGE_ENV", "test")
        .env("FORMBRIDGE__STORE__URL", app.store_url())
        .env("FORMBRIDGE__SOURCES__POWR__SECRET", SECRET)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn map_compare_prints_the_differences_and_exits_by_what_it_found() {
    // The running mapping reads the phone; the good lead has only that.
    let app = spawn_playground(PHONE_FIELD).await;
    let phone_only = post_powr(&app, &phone_only_lead()).await;
    let config = app.dir.path().join("config");
    let candidates = app.dir.path().join("candidates");
    std::fs::create_dir_all(&candidates).unwrap();
    let write = |name: &str, text: &str| {
        let path = candidates.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // The same mapping plus a tag: exit 0, the tag printed as added.
    let tagged = write(
        "tagged.toml",
        &format!("{PHONE_FIELD}\n[sources.powr.mapping.tags]\nstatic = [\"vip\"]\n"),
    );
    let (code, out, err) = map_compare(&app, &config, &["--source", "powr", "--compare", &tagged]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains(&format!("event {phone_only}")), "{out}");
    assert!(out.contains("+ tags.vip"), "{out}");

    // JSON too.
    let (code, out, _) = map_compare(
        &app,
        &config,
        &[
            "--source",
            "powr",
            "--compare",
            &tagged,
            "--last",
            "5",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["counts"]["changed"], 1);

    // Without the phone's answer the lead breaks: exit 4.
    let default = write("default.toml", "");
    let (code, out, err) = map_compare(&app, &config, &["--source", "powr", "--compare", &default]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("BROKEN"), "{out}");

    // A configuration problem: exit 3, the key printed.
    let broken = write(
        "broken.toml",
        "[sources.powr.mapping]\nkeep_first_source = \"no\"\n",
    );
    let (code, out, _) = map_compare(&app, &config, &["--source", "powr", "--compare", &broken]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("sources.powr.mapping.keep_first_source"),
        "{out}"
    );

    // Usage: an unknown source, a bad --last: exit 2. `map --file` still works.
    let (code, _, err) = map_compare(&app, &config, &["--source", "nosuch", "--compare", &tagged]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = map_compare(
        &app,
        &config,
        &["--source", "powr", "--compare", &tagged, "--last", "0"],
    );
    assert_eq!(code, 2);
    let delivery = write("delivery.json", &phone_only_lead().to_string());
    let (code, out, err) = map_compare(&app, &config, &["--source", "powr", "--file", &delivery]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("+14155550100"), "{out}");
}
