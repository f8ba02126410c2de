//! Mapping templates (`{{variable}}`) and `when` conditions over arbitrary answers: parsing any
//! text never panics, and what parses renders and evaluates as documented — text without `{{`
//! renders as itself, `{{answers.<key>}}` renders the answer, `present` is the opposite of
//! `present = false`, and an `equals` that holds implies the `contains` of the same text.
#![no_main]

use arbitrary::Arbitrary;
use formbridge::mapping::condition::Condition;
use formbridge::mapping::template::Template;
use formbridge::mapping::vars::Vars;
use formbridge::submission::{Answer, AnswerValue, Submission};
use formbridge_fuzz::RECEIVED_AT;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    template: String,
    /// (key, value, as a list of choices split on `,`)
    answers: Vec<(String, String, bool)>,
    /// The condition's field and operand, and which operator.
    field: String,
    operand: String,
    operator: u8,
}

fuzz_target!(|input: Input| {
    let mut submission = Submission::new(RECEIVED_AT);
    for (key, value, list) in input.answers.iter().take(32) {
        let value = if *list {
            AnswerValue::List(value.split(',').map(str::to_owned).collect())
        } else {
            AnswerValue::Text(value.clone())
        };
        submission.answers.push(Answer {
            key: key.clone(),
            label: key.clone(),
            value,
        });
    }
    let vars = Vars {
        submission: &submission,
        source: "fuzz",
        tool: "generic",
    };
    if let Ok(template) = Template::parse(&input.template) {
        let rendered = template.render(&vars);
        if !input.template.contains("{{") {
            assert_eq!(rendered, input.template);
        }
    }
    // `{{answers.<key>}}` renders the first answer with that key.
    if let Some(answer) = submission.answers.first() {
        let key = &answer.key;
        // A key with `}` cannot be written in a variable (its `}}` would end early).
        if !key.is_empty() && key.trim() == key && !key.contains('}') {
            let template = Template::parse(&format!("<{{{{answers.{key}}}}}>"))
                .unwrap_or_else(|e| panic!("a variable of an answer key parses: {e}"));
            assert_eq!(
                template.render(&vars),
                format!("<{}>", answer.value.display())
            );
        }
    }
    check_conditions(&input, &vars);
});

fn check_conditions(input: &Input, vars: &Vars<'_>) {
    let condition = |equals, contains, matches, present| Condition {
        field: input.field.clone(),
        equals,
        contains,
        matches,
        present,
    };
    let operand = Some(input.operand.clone());
    let chosen = match input.operator % 4 {
        0 => condition(operand, None, None, None),
        1 => condition(None, operand, None, None),
        2 => condition(None, None, operand, None),
        _ => condition(None, None, None, Some(input.operand.is_empty())),
    };
    if let Ok(compiled) = chosen.compile("fuzz.when") {
        let _ = compiled.holds(vars);
    }
    let (Ok(present), Ok(absent)) = (
        condition(None, None, None, Some(true)).compile("fuzz.when"),
        condition(None, None, None, Some(false)).compile("fuzz.when"),
    ) else {
        return;
    };
    assert_ne!(present.holds(vars), absent.holds(vars));
    let equals = condition(Some(input.operand.clone()), None, None, None).compile("fuzz.when");
    let contains =
        condition(None, Some(input.operand.trim().to_owned()), None, None).compile("fuzz.when");
    if let (Ok(equals), Ok(contains)) = (equals, contains) {
        if equals.holds(vars) {
            assert!(contains.holds(vars), "equals holds but contains does not");
        }
    }
}
