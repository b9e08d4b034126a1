//! Paths of the Marathon API calls the bridge makes.

use alloc::string::String;

use crate::encoding::encode_path;

/// `GET` all apps with their tasks in one request.
pub const APPS_WITH_TASKS_PATH: &str = "/v2/apps?embed=apps.tasks";

/// `GET` lists and `POST ?callbackUrl=` adds HTTP callback subscriptions.
pub const SUBSCRIPTIONS_PATH: &str = "/v2/eventSubscriptions";

/// `/v2/apps/<id>`; ids with or without their leading `/` give the same path.
pub fn app_path(app_id: &str) -> String {
    alloc::format!("/v2/apps/{}", encode_path(app_id.trim_start_matches('/')))
}

/// `/v2/apps/<id>/tasks`.
pub fn app_tasks_path(app_id: &str) -> String {
    alloc::format!("{}/tasks", app_path(app_id))
}
