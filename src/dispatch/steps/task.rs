//! The task step: what a task sends to GHL (title, body with its marker, due date, assignee),
//! written at most once through [`super::marked`].

use super::marked::{MarkedRecord, On};
use crate::ghl::types::{CreateTaskRequest, TaskResponse, UpdateTaskRequest};
use crate::ghl::{GhlError, GhlResponse};
use crate::ghl_access::marker::with_marker;

/// A task step's contents, as the plan gives them.
pub(super) struct TaskStep<'a> {
    pub title: &'a str,
    pub body: Option<&'a str>,
    /// RFC 3339, as GHL takes it.
    pub due_date: String,
    pub assigned_to: Option<&'a str>,
}

impl MarkedRecord for TaskStep<'_> {
    type Answer = TaskResponse;

    fn id_of(answer: TaskResponse) -> String {
        answer.task.id
    }

    async fn update(&self, on: &On<'_>, id: &str) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let update = UpdateTaskRequest {
            title: Some(self.title.to_owned()),
            body: Some(with_marker(self.body, on.mark)),
            due_date: Some(self.due_date.clone()),
            completed: None,
            assigned_to: self.assigned_to.map(str::to_owned),
        };
        on.client
            .update_task(on.location, on.contact, id, &update)
            .await
    }

    async fn find(&self, on: &On<'_>) -> Result<Option<String>, GhlError> {
        let found = on
            .client
            .find_task_with_marker(on.location, on.contact, on.mark)
            .await?;
        Ok(found.map(|task| task.id))
    }

    async fn create(&self, on: &On<'_>) -> Result<GhlResponse<TaskResponse>, GhlError> {
        let request = CreateTaskRequest {
            title: self.title.to_owned(),
            body: Some(with_marker(self.body, on.mark)),
            due_date: self.due_date.clone(),
            completed: false,
            assigned_to: self.assigned_to.map(str::to_owned),
        };
        on.client
            .create_task(on.location, on.contact, &request)
            .await
    }
}
