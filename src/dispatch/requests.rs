//! Plan steps as GHL request bodies: where the mapping's plan meets the GHL client's types.

use crate::ghl::types::{ContactProperties, CustomFieldInput, UpsertContactRequest};
use crate::mapping::plan::{ContactFields, CustomFieldValue};
use crate::submission::ContactField;

/// The upsert body for a plan's contact fields in `location_id`.
pub fn upsert_request(location_id: &str, fields: &ContactFields) -> UpsertContactRequest {
    let mut request = UpsertContactRequest {
        location_id: location_id.to_owned(),
        gender: None,
        company_name: None,
        create_new_if_duplicate_allowed: None,
        contact: ContactProperties {
            source: fields.source.clone(),
            custom_fields: fields.custom_fields.iter().map(custom_field).collect(),
            ..ContactProperties::default()
        },
    };
    for (field, value) in &fields.values {
        let contact = &mut request.contact;
        let slot = match field {
            ContactField::Email => &mut contact.email,
            ContactField::Phone => &mut contact.phone,
            ContactField::FirstName => &mut contact.first_name,
            ContactField::LastName => &mut contact.last_name,
            ContactField::Name => &mut contact.name,
            // The upsert body carries the company beside the contact properties.
            ContactField::CompanyName => &mut request.company_name,
            ContactField::Address1 => &mut contact.address1,
            ContactField::City => &mut contact.city,
            ContactField::State => &mut contact.state,
            ContactField::PostalCode => &mut contact.postal_code,
            ContactField::Country => &mut contact.country,
            ContactField::Website => &mut contact.website,
            ContactField::Timezone => &mut contact.timezone,
        };
        *slot = Some(value.clone());
    }
    request
}

fn custom_field(v: &CustomFieldValue) -> CustomFieldInput {
    CustomFieldInput {
        id: v.id.clone(),
        key: v.key.clone(),
        field_value: v.value.clone(),
    }
}
