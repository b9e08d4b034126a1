//! Paths of the Marathon API calls the bridge makes.

use alloc::string::String;

use crate::encoding::encode_segment;

/// `GET` all apps with their tasks in one request.
pub const APPS_WITH_TASKS_PATH: &str = "/v2/apps?embed=apps.tasks";

/// `GET` lists and `POST ?callbackUrl=` adds HTTP callback subscriptions.
pub const SUBSCRIPTIONS_PATH: &str = "/v2/eventSubscriptions";

/// `/v2/apps/<id>`; ids with or without their leading `/` give the same path. Each segment of the
/// id is encoded on its own: the id's `/`s are Marathon's path separators.
pub fn app_path(app_id: &str) -> String {
    let mut path = String::from("/v2/apps");
    for segment in app_id.trim_start_matches('/').split('/') {
        path.push('/');
        path.push_str(&encode_segment(segment));
    }
    path
}

/// `/v2/apps/<id>/tasks`.
pub fn app_tasks_path(app_id: &str) -> String {
    alloc::format!("{}/tasks", app_path(app_id))
}
