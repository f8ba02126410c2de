//! The benches' delivery: JivoChat's documented `offline_message`, made unique per request.

/// The delivery: JivoChat's documented `offline_message`, its ids and the visitor's email made
/// unique per request (`{N}` replaced). With `edits`, the message id stays the same, so every
/// delivery after the first is one more revision of one submission (what an edit costs as the
/// revisions pile up).
pub fn body_template(edits: bool) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jivochat/offline_message.json"
    );
    let text = std::fs::read_to_string(path).expect("the JivoChat fixture");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    // JivoChat's own id of an offline message (else its chat): a delivery with a known id and
    // other content would be an edit of that one.
    value["offline_message_id"] = serde_json::json!(999_999_999_999u64);
    value["chat_id"] = serde_json::json!(999_999_999_999u64);
    value["visitor"]["email"] = serde_json::json!("lead999999999999@example.com");
    let template = serde_json::to_string(&value)
        .expect("JSON")
        .replace("999999999999", "{N}");
    if edits {
        template.replace(r#""offline_message_id":{N}"#, r#""offline_message_id":42"#)
    } else {
        template
    }
}

/// Delivery `n` of `template`: its ids as long as every other run's (the numbers start high),
/// so the body's size does not depend on `n`.
pub fn body(template: &str, n: u64) -> String {
    template.replace("{N}", &(100_000_000_000 + n).to_string())
}
