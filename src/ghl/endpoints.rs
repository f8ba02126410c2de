//! The typed GHL endpoint methods of [`GhlClient`], one per Contacts API operation, plus the
//! marker lookups the dispatcher uses to avoid duplicate tasks and notes after a crash.

use reqwest::Method;

use super::client::{encode_query, GhlClient, GhlResponse};
use super::error::GhlError;
use super::types::*;

impl GhlClient {
    // ------------------------------------------------------------------------------------------
    // Contacts
    // ------------------------------------------------------------------------------------------

    /// `POST /contacts/upsert`: create or update by email, then phone. `body.new` says which.
    pub async fn upsert_contact(
        &self,
        request: &UpsertContactRequest,
    ) -> Result<GhlResponse<UpsertContactResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/upsert",
            &["contacts", "upsert"],
            None,
            Some(request),
        )?;
        self.execute(&request.location_id, p).await
    }

    /// `POST /contacts/`: create. With duplicates disallowed, an existing match fails with
    /// [`GhlError::Rejected`] whose `existing_contact_id` names it.
    pub async fn create_contact(
        &self,
        request: &CreateContactRequest,
    ) -> Result<GhlResponse<ContactResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/",
            &["contacts", ""],
            None,
            Some(request),
        )?;
        self.execute(&request.location_id, p).await
    }

    /// `GET /contacts/:contactId`.
    pub async fn get_contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<GhlResponse<ContactResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId",
            &["contacts", contact_id],
        )?;
        self.execute(location_id, p).await
    }

    /// `PUT /contacts/:contactId`. `tags` in the body replaces every tag.
    pub async fn update_contact(
        &self,
        location_id: &str,
        contact_id: &str,
        request: &UpdateContactRequest,
    ) -> Result<GhlResponse<UpdateContactResponse>, GhlError> {
        let p = self.prepare_json(
            Method::PUT,
            "PUT /contacts/:contactId",
            &["contacts", contact_id],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// `DELETE /contacts/:contactId`.
    pub async fn delete_contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<GhlResponse<DeleteResponse>, GhlError> {
        let p = self.prepare(
            Method::DELETE,
            "DELETE /contacts/:contactId",
            &["contacts", contact_id],
        )?;
        self.execute(location_id, p).await
    }

    /// Deprecated `GET /contacts/` (paginate with `meta.startAfterId` / `meta.startAfter`).
    pub async fn list_contacts(
        &self,
        query: &ListContactsQuery,
    ) -> Result<GhlResponse<ListContactsResponse>, GhlError> {
        let p = self.prepare_json::<()>(
            Method::GET,
            "GET /contacts/",
            &["contacts", ""],
            Some(encode_query(query)?),
            None,
        )?;
        self.execute(&query.location_id, p).await
    }

    /// `POST /contacts/search`. The search index lags writes by up to about a minute.
    pub async fn search_contacts(
        &self,
        request: &SearchContactsRequest,
    ) -> Result<GhlResponse<SearchContactsResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/search",
            &["contacts", "search"],
            None,
            Some(request),
        )?;
        self.execute(&request.location_id, p).await
    }

    /// `GET /contacts/search/duplicate`: the contact GHL's duplicate rule matches for an email
    /// or phone (email first), read from the contacts themselves (no search-index lag).
    pub async fn find_duplicate_contact(
        &self,
        query: &DuplicateContactQuery,
    ) -> Result<GhlResponse<DuplicateContactResponse>, GhlError> {
        let p = self.prepare_json::<()>(
            Method::GET,
            "GET /contacts/search/duplicate",
            &["contacts", "search", "duplicate"],
            Some(encode_query(query)?),
            None,
        )?;
        self.execute(&query.location_id, p).await
    }

    /// The id of a contact of `location_id` carrying `tag` (a marker), by `POST
    /// /contacts/search`. GHL's search index lags writes by up to about a minute.
    pub async fn find_contact_with_tag(
        &self,
        location_id: &str,
        tag: &str,
    ) -> Result<Option<String>, GhlError> {
        let request = SearchContactsRequest {
            location_id: location_id.to_owned(),
            page_limit: 1,
            filters: vec![serde_json::json!({"field": "tags", "operator": "eq", "value": tag})],
            ..SearchContactsRequest::default()
        };
        let found = self.search_contacts(&request).await?;
        Ok(found.body.contacts.into_iter().next().map(|c| c.id))
    }

    /// `GET /contacts/business/:businessId`.
    pub async fn business_contacts(
        &self,
        business_id: &str,
        query: &BusinessContactsQuery,
    ) -> Result<GhlResponse<BusinessContactsResponse>, GhlError> {
        let p = self.prepare_json::<()>(
            Method::GET,
            "GET /contacts/business/:businessId",
            &["contacts", "business", business_id],
            Some(encode_query(query)?),
            None,
        )?;
        self.execute(&query.location_id, p).await
    }

    /// `GET /contacts/:contactId/appointments`.
    pub async fn contact_appointments(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<GhlResponse<AppointmentsResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId/appointments",
            &["contacts", contact_id, "appointments"],
        )?;
        self.execute(location_id, p).await
    }

    // ------------------------------------------------------------------------------------------
    // Tags
    // ------------------------------------------------------------------------------------------

    /// `POST /contacts/:contactId/tags`: adds tags; answers the full resulting list.
    pub async fn add_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<GhlResponse<TagsResponse>, GhlError> {
        let body = TagsRequest {
            tags: tags.to_vec(),
        };
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/:contactId/tags",
            &["contacts", contact_id, "tags"],
            None,
            Some(&body),
        )?;
        self.execute(location_id, p).await
    }

    /// `DELETE /contacts/:contactId/tags` (with a JSON body).
    pub async fn remove_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<GhlResponse<TagsResponse>, GhlError> {
        let body = TagsRequest {
            tags: tags.to_vec(),
        };
        let p = self.prepare_json(
            Method::DELETE,
            "DELETE /contacts/:contactId/tags",
            &["contacts", contact_id, "tags"],
            None,
            Some(&body),
        )?;
        self.execute(location_id, p).await
    }

    // ------------------------------------------------------------------------------------------
    // Tasks
    // ------------------------------------------------------------------------------------------

    /// `GET /contacts/:contactId/tasks`.
    pub async fn list_tasks(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<GhlResponse<TasksResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId/tasks",
            &["contacts", contact_id, "tasks"],
        )?;
        self.execute(location_id, p).await
    }

    /// `GET /contacts/:contactId/tasks/:taskId`.
    pub async fn get_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
    ) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId/tasks/:taskId",
            &["contacts", contact_id, "tasks", task_id],
        )?;
        self.execute(location_id, p).await
    }

    /// `POST /contacts/:contactId/tasks`.
    pub async fn create_task(
        &self,
        location_id: &str,
        contact_id: &str,
        request: &CreateTaskRequest,
    ) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/:contactId/tasks",
            &["contacts", contact_id, "tasks"],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// `PUT /contacts/:contactId/tasks/:taskId`.
    pub async fn update_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
        request: &UpdateTaskRequest,
    ) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let p = self.prepare_json(
            Method::PUT,
            "PUT /contacts/:contactId/tasks/:taskId",
            &["contacts", contact_id, "tasks", task_id],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// `PUT /contacts/:contactId/tasks/:taskId/completed`.
    pub async fn complete_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
        completed: bool,
    ) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let p = self.prepare_json(
            Method::PUT,
            "PUT /contacts/:contactId/tasks/:taskId/completed",
            &["contacts", contact_id, "tasks", task_id, "completed"],
            None,
            Some(&TaskCompletedRequest { completed }),
        )?;
        self.execute(location_id, p).await
    }

    /// `DELETE /contacts/:contactId/tasks/:taskId`.
    pub async fn delete_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
    ) -> Result<GhlResponse<DeleteResponse>, GhlError> {
        let p = self.prepare(
            Method::DELETE,
            "DELETE /contacts/:contactId/tasks/:taskId",
            &["contacts", contact_id, "tasks", task_id],
        )?;
        self.execute(location_id, p).await
    }

    /// The contact's first task whose title or body contains `marker` (the dispatcher's
    /// idempotency marker), via `GET /contacts/:contactId/tasks`.
    pub async fn find_task_with_marker(
        &self,
        location_id: &str,
        contact_id: &str,
        marker: &str,
    ) -> Result<Option<Task>, GhlError> {
        let tasks = self.list_tasks(location_id, contact_id).await?.body.tasks;
        Ok(tasks.into_iter().find(|t| {
            t.body.as_deref().is_some_and(|b| b.contains(marker))
                || t.title.as_deref().is_some_and(|b| b.contains(marker))
        }))
    }

    // ------------------------------------------------------------------------------------------
    // Notes
    // ------------------------------------------------------------------------------------------

    /// `GET /contacts/:contactId/notes`.
    pub async fn list_notes(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<GhlResponse<NotesResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId/notes",
            &["contacts", contact_id, "notes"],
        )?;
        self.execute(location_id, p).await
    }

    /// `GET /contacts/:contactId/notes/:id`.
    pub async fn get_note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<GhlResponse<NoteResponse>, GhlError> {
        let p = self.prepare(
            Method::GET,
            "GET /contacts/:contactId/notes/:id",
            &["contacts", contact_id, "notes", note_id],
        )?;
        self.execute(location_id, p).await
    }

    /// `POST /contacts/:contactId/notes`.
    pub async fn create_note(
        &self,
        location_id: &str,
        contact_id: &str,
        request: &CreateNoteRequest,
    ) -> Result<GhlResponse<NoteResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /contacts/:contactId/notes",
            &["contacts", contact_id, "notes"],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// `PUT /contacts/:contactId/notes/:id`.
    pub async fn update_note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
        request: &UpdateNoteRequest,
    ) -> Result<GhlResponse<NoteResponse>, GhlError> {
        let p = self.prepare_json(
            Method::PUT,
            "PUT /contacts/:contactId/notes/:id",
            &["contacts", contact_id, "notes", note_id],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// `DELETE /contacts/:contactId/notes/:id`.
    pub async fn delete_note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<GhlResponse<DeleteResponse>, GhlError> {
        let p = self.prepare(
            Method::DELETE,
            "DELETE /contacts/:contactId/notes/:id",
            &["contacts", contact_id, "notes", note_id],
        )?;
        self.execute(location_id, p).await
    }

    /// The contact's first note whose body contains `marker`.
    pub async fn find_note_with_marker(
        &self,
        location_id: &str,
        contact_id: &str,
        marker: &str,
    ) -> Result<Option<Note>, GhlError> {
        let notes = self.list_notes(location_id, contact_id).await?.body.notes;
        Ok(notes.into_iter().find(|n| {
            n.body.as_deref().is_some_and(|b| b.contains(marker))
                || n.body_text.as_deref().is_some_and(|b| b.contains(marker))
        }))
    }
}
