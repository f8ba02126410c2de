//! The places where an official GHL spec is known to be wrong, each with its reason: a problem
//! found there is reported as tolerated, never passed silently.

/// A known disagreement between a spec and what GHL accepts: a problem starting with
/// `problem` of `operation` (`METHOD /template`) at `at` (array indices written `[]`) is
/// tolerated, and reported as such rather than passed silently.
#[derive(Debug)]
pub struct Tolerance {
    /// `METHOD /path/{template}` as the spec declares it.
    pub operation: &'static str,
    /// Where in the request, e.g. `body.customFields[].id` or `query.locationId`.
    pub at: &'static str,
    /// The start of the problem tolerated there.
    pub problem: &'static str,
    /// Why the spec is wrong here, and the evidence.
    pub why: &'static str,
}

/// The contacts spec leaves `POST /contacts/search`'s body (`SearchBodyV2DTO`) an empty
/// object; these are the properties GHL documents elsewhere and answers (ghl-api.md §2.7).
const SEARCH_BODY: &str =
    "SearchBodyV2DTO declares no properties; GHL takes these (ghl-api.md §2.7, observed)";

/// The contacts spec requires `id` in every `customFields` item, but its descriptions say
/// "Pass either `id` or `key`", and GHL takes `{key, field_value}` (ghl-api.md §2.2).
const CUSTOM_FIELD_KEY: &str =
    "customFields items may name the field by `key` instead of `id` (spec descriptions, ghl-api.md §2.2)";

/// The contacts spec types `dateOfBirth` as an object, yet describes it as a date string in one
/// of eight formats, with the example `"1990-09-25"` (ghl-api.md §2.1).
const DATE_OF_BIRTH: &str =
    "dateOfBirth is typed object but documented and exemplified as a date string";

const UNDECLARED: &str = "property not declared";
const STRING_FOR_OBJECT: &str = "expected object, got string";
const MISSING: &str = "required property missing";

/// The tolerated deviations; each must say why.
pub const TOLERATED: &[Tolerance] = &[
    Tolerance {
        operation: "POST /contacts/upsert",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "POST /contacts/",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "PUT /contacts/{contactId}",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "POST /contacts/upsert",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "POST /contacts/",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "PUT /contacts/{contactId}",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.locationId",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.pageLimit",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.page",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.query",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.filters",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.sort",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.searchAfter",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
];
