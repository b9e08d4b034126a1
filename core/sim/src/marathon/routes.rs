//! The simulated Marathon's HTTP API: [`SimMarathon::handle`] and one handler per route
//! (`/ping`, `/v2/leader`, `/v2/info`, `/v2/eventSubscriptions`, `/v2/tasks`, `/v2/apps` and
//! `/v2/apps/{id}[/tasks]`), and the error responses Marathon, Jersey and Jetty give.
//!
//! Not here: checking request bodies, ids, selectors and URLs (`super::validation`), the JSON
//! shapes of what is found (`super::json`), or the `/v2/events` stream (an HTTP wrapper's job).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use consular_core::Method;

use super::json::iso8601;
use super::model::{MarathonVersion, SimApp};
use super::validation::{
    canonical_path, embed_name, java_url_error, normalize_app_id, parse_label_selector,
    validate_app_id,
};
use super::SimMarathon;
use crate::wire::{parse_query, percent_decode, query_get, split_path_query, SimResponse, J};

const JSON: &str = "application/json";

impl SimMarathon {
    /// Answers one HTTP request (`path_and_query` as sent on the wire, percent-encoded). Never
    /// panics; malformed input gets Marathon's (or Jetty's) error response. See the module docs
    /// for the routes.
    pub fn handle(&mut self, method: Method, path_and_query: &str, body: &[u8]) -> SimResponse {
        let (raw_path, query) = split_path_query(path_and_query);
        let Some(path) = percent_decode(raw_path, false)
            .and_then(|p| String::from_utf8(p).ok())
            .and_then(|p| canonical_path(&p))
        else {
            return jetty_bad_uri();
        };
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_string()
        } else {
            path
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if self.no_leader && path != "/v2/leader" {
            let status = if self.version >= MarathonVersion::V1_10 {
                502
            } else {
                503
            };
            return jetty_error(status, "Could not determine the current leader", raw_path);
        }
        let params = parse_query(query, false);
        match path.as_str() {
            "/ping" => match method {
                Method::Get if self.version >= MarathonVersion::V1_10 => {
                    SimResponse::new(200, "text/plain", "pong")
                }
                Method::Get => SimResponse::new(200, "text/plain;charset=ISO-8859-1", "pong\n"),
                _ => method_not_allowed("GET"),
            },
            "/v2/leader" => match method {
                Method::Get | Method::Delete if self.no_leader => {
                    json_message(404, "There is no leader")
                }
                Method::Get => json(200, &J::obj([("leader", J::s(self.leader.as_str()))])),
                Method::Delete => json_message(200, "Leadership abdicated"),
                _ => method_not_allowed("DELETE,GET"),
            },
            "/v2/info" => match method {
                Method::Get => json(200, &self.info()),
                _ => method_not_allowed("GET"),
            },
            "/v2/events" => {
                let message = format!("HTTP method {} is not supported by this URL", method);
                jetty_error(405, &message, raw_path)
            }
            "/v2/eventSubscriptions" if self.version.has_event_subscriptions() => {
                self.event_subscriptions(method, &params)
            }
            "/v2/tasks" => match method {
                Method::Get => self.all_tasks(&params),
                _ => method_not_allowed("GET"),
            },
            "/v2/apps" => match method {
                Method::Get => self.list_apps(&params),
                Method::Post => self.create_app(body),
                _ => method_not_allowed("GET,POST"),
            },
            p => match p.strip_prefix("/v2/apps/") {
                Some(rest) => self.app_route(method, rest, body),
                None => not_found_uri(raw_path),
            },
        }
    }

    fn info(&self) -> J {
        let v = self.version;
        let mut o = J::obj([("name", J::s("marathon")), ("version", J::s(v.release()))]);
        if v >= MarathonVersion::V1_1 {
            o.put("buildref", J::s("unknown"));
        }
        o.put("elected", J::Bool(true));
        o.put("leader", J::s(self.leader.as_str()));
        o.put(
            "frameworkId",
            J::s("5e1d0000-0000-4000-8000-000000000001-0000"),
        );
        if v.has_event_subscriptions() && self.callbacks_enabled {
            o.put(
                "event_subscriber",
                J::obj([("type", J::s("http_callback")), ("http_endpoints", J::Null)]),
            );
        }
        let host = self.leader.split(':').next().unwrap_or("localhost");
        o.put(
            "marathon_config",
            J::obj([
                ("checkpoint", J::Bool(true)),
                ("executor", J::s("//cmd")),
                ("failover_timeout", J::Int(604_800)),
                ("framework_name", J::s("marathon")),
                ("ha", J::Bool(true)),
                ("hostname", J::s(host)),
                ("local_port_max", J::Int(20_000)),
                ("local_port_min", J::Int(10_000)),
                ("master", J::s("zk://localhost:2181/mesos")),
                ("mesos_leader_ui_url", J::s("http://localhost:5050/")),
                ("mesos_role", J::Null),
                ("mesos_user", J::s("root")),
                ("reconciliation_initial_delay", J::Int(15_000)),
                ("reconciliation_interval", J::Int(600_000)),
                ("task_launch_timeout", J::Int(300_000)),
                ("webui_url", J::Null),
            ]),
        );
        o.put(
            "zookeeper_config",
            J::obj([
                ("zk", J::s("zk://localhost:2181/marathon")),
                ("zk_timeout", J::Int(10_000)),
                ("zk_session_timeout", J::Int(10_000)),
                ("zk_max_versions", J::Int(50)),
            ]),
        );
        o.put(
            "http_config",
            J::obj([("http_port", J::Int(8080)), ("https_port", J::Int(8443))]),
        );
        o
    }

    fn event_subscriptions(&mut self, method: Method, params: &[(String, String)]) -> SimResponse {
        if !matches!(method, Method::Get | Method::Post | Method::Delete) {
            return method_not_allowed("DELETE,GET,POST");
        }
        if !self.callbacks_enabled {
            let message = if self.version >= MarathonVersion::V1_4 {
                "http event callback system is not running on this Marathon instance. Please re-start this instance with\n\"--event_subscriber http_callback\"."
            } else {
                "http event callback system is not running on this Marathon instance. Please re-start this instance with \"--event_subscriber http_callback\"."
            };
            return json_message(400, message);
        }
        let url = query_get(params, "callbackUrl");
        match method {
            Method::Get => json(
                200,
                &J::obj([(
                    "callbackUrls",
                    J::strs(self.subscriptions.iter().map(String::as_str)),
                )]),
            ),
            Method::Post => {
                if self.version >= MarathonVersion::V1_4 {
                    if let Some(error) = java_url_error(url) {
                        return json(
                            422,
                            &J::obj([
                                ("message", J::s("Object is not valid")),
                                (
                                    "details",
                                    J::Arr(vec![J::obj([
                                        ("path", J::s("/")),
                                        ("errors", J::Arr(vec![error])),
                                    ])]),
                                ),
                            ]),
                        );
                    }
                }
                if let Some(url) = url {
                    if !self.subscriptions.iter().any(|s| s == url) {
                        self.subscriptions.push(url.to_string());
                    }
                }
                self.subscription_event("subscribe_event", url)
            }
            _ => {
                if let Some(url) = url {
                    self.subscriptions.retain(|s| s != url);
                }
                self.subscription_event("unsubscribe_event", url)
            }
        }
    }

    fn subscription_event(&mut self, event_type: &str, url: Option<&str>) -> SimResponse {
        let event = self.make_event(
            event_type,
            J::obj([
                ("clientIp", J::s(self.client_ip.as_str())),
                ("callbackUrl", J::opt_s(url)),
            ]),
            false,
        );
        let response = SimResponse::new(200, JSON, event.json.clone());
        self.events.push(event);
        response
    }

    fn list_apps(&self, params: &[(String, String)]) -> SimResponse {
        let embed: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "embed")
            .map(|(_, v)| embed_name(v))
            .collect();
        let ignore = self.ignore_embed;
        let tasks = !ignore && embed.iter().any(|e| matches!(*e, "tasks" | "failures"));
        let failure = !ignore
            && embed
                .iter()
                .any(|e| matches!(*e, "lastTaskFailure" | "failures"));
        let id_filter = query_get(params, "id").map(str::to_lowercase);
        let cmd_filter = query_get(params, "cmd").map(str::to_lowercase);
        let selector = query_get(params, "label").map(parse_label_selector);
        let apps = self
            .apps
            .values()
            .filter(|a| {
                id_filter
                    .as_ref()
                    .is_none_or(|f| a.id.to_lowercase().contains(f.as_str()))
            })
            .filter(|a| {
                cmd_filter
                    .as_ref()
                    .is_none_or(|f| a.cmd.to_lowercase().contains(f.as_str()))
            })
            .filter(|a| match &selector {
                None => true,
                Some(None) => false,
                Some(Some(terms)) => terms.iter().all(|t| t.matches(&a.labels)),
            })
            .map(|a| self.app_info(a, tasks, failure))
            .collect();
        json(200, &J::obj([("apps", J::Arr(apps))]))
    }

    fn all_tasks(&self, params: &[(String, String)]) -> SimResponse {
        let status = query_get(params, "status").map(|s| format!("TASK_{}", s.to_uppercase()));
        let tasks = self
            .apps
            .values()
            .flat_map(|a| a.tasks.iter().map(move |t| (a, t)))
            .filter(|(_, t)| status.as_ref().is_none_or(|s| &t.state == s))
            .map(|(a, t)| self.task_json(a, t))
            .collect();
        json(200, &J::obj([("tasks", J::Arr(tasks))]))
    }

    fn group_apps(&self, group: &str) -> Option<Vec<&SimApp>> {
        let group = normalize_app_id(group);
        let prefix = if group == "/" {
            "/".to_string()
        } else {
            format!("{group}/")
        };
        let apps: Vec<&SimApp> = self
            .apps
            .values()
            .filter(|a| a.id.starts_with(&prefix))
            .collect();
        (group == "/" || !apps.is_empty()).then_some(apps)
    }

    fn app_route(&mut self, method: Method, rest: &str, body: &[u8]) -> SimResponse {
        if let Some(id) = rest.strip_suffix("/tasks").filter(|id| !id.is_empty()) {
            return self.app_tasks(method, id);
        }
        if rest == "*" || rest.ends_with("/*") {
            if method != Method::Get {
                return method_not_allowed("GET");
            }
            let group = rest.trim_end_matches('*');
            return match self.group_apps(group) {
                Some(apps) => {
                    let apps = apps
                        .into_iter()
                        .map(|a| self.app_info(a, true, true))
                        .collect();
                    json(200, &J::obj([("*", J::Arr(apps))]))
                }
                None => unknown_group(group),
            };
        }
        let id = normalize_app_id(rest);
        match method {
            Method::Get => match self.apps.get(&id) {
                Some(app) => json(200, &J::obj([("app", self.app_info(app, true, true))])),
                None => unknown_app(&id),
            },
            Method::Put => self.put_app_http(&id, body),
            Method::Delete => {
                if !self.apps.contains_key(&id) {
                    return unknown_app(&id);
                }
                self.remove_app(&id);
                self.deployment_result(200)
            }
            Method::Post => method_not_allowed("DELETE,GET,PUT"),
        }
    }

    fn app_tasks(&mut self, method: Method, id: &str) -> SimResponse {
        let apps: Vec<SimApp> = if id == "*" || id.ends_with("/*") {
            let group = id.trim_end_matches('*');
            match self.group_apps(group) {
                Some(apps) => apps.into_iter().cloned().collect(),
                None => return unknown_group(group),
            }
        } else {
            let id = normalize_app_id(id);
            match self.apps.get(&id) {
                Some(app) if app.tasks.is_empty() && self.empty_tasks_404 => {
                    return unknown_app(&id)
                }
                Some(app) => vec![app.clone()],
                None => return unknown_app(&id),
            }
        };
        let tasks = J::Arr(
            apps.iter()
                .flat_map(|a| a.tasks.iter().map(move |t| (a, t)))
                .map(|(a, t)| self.task_json(a, t))
                .collect(),
        );
        match method {
            Method::Get => json(200, &J::obj([("tasks", tasks)])),
            Method::Delete => {
                for app in &apps {
                    for task in &app.tasks {
                        self.set_task_state(&task.id, "TASK_KILLED");
                    }
                }
                json(200, &J::obj([("tasks", tasks)]))
            }
            _ => method_not_allowed("DELETE,GET"),
        }
    }

    fn deployment_result(&mut self, status: u16) -> SimResponse {
        self.next_id += 1;
        json(
            status,
            &J::obj([
                (
                    "deploymentId",
                    J::s(format!("00000000-0000-4000-8000-{:012x}", self.next_id)),
                ),
                ("version", J::s(iso8601(self.now))),
            ]),
        )
    }

    fn create_app(&mut self, body: &[u8]) -> SimResponse {
        let update = match self.parse_app_body(body, true) {
            Ok(update) => update,
            Err(response) => return response,
        };
        let id = update.id.clone().unwrap_or_default();
        if self.apps.contains_key(&id) {
            return json_message(409, &format!("An app with id [{id}] already exists."));
        }
        self.upsert_app(&id, |app| update.apply(app));
        match self.apps.get(&id) {
            Some(app) => json(201, &self.app_info(app, true, false))
                .with_header("Location", format!("/v2/apps{id}")),
            None => json_message(500, "app vanished"),
        }
    }

    fn put_app_http(&mut self, id: &str, body: &[u8]) -> SimResponse {
        if let Err(e) = validate_app_id(id) {
            return e;
        }
        let update = match self.parse_app_body(body, false) {
            Ok(update) => update,
            Err(response) => return response,
        };
        let created = !self.apps.contains_key(id);
        self.upsert_app(id, |app| update.apply(app));
        self.deployment_result(if created { 201 } else { 200 })
    }
}

pub(super) fn json(status: u16, body: &J) -> SimResponse {
    SimResponse::new(status, JSON, body.compact(false))
}

pub(super) fn json_message(status: u16, message: &str) -> SimResponse {
    json(status, &J::obj([("message", J::s(message))]))
}

pub(super) fn invalid_json(path: &str, error: &str) -> SimResponse {
    json(
        400,
        &J::obj([
            ("message", J::s("Invalid JSON")),
            (
                "details",
                J::Arr(vec![J::obj([
                    ("path", J::s(path)),
                    ("errors", J::Arr(vec![J::s(error)])),
                ])]),
            ),
        ]),
    )
}

fn unknown_app(id: &str) -> SimResponse {
    json_message(404, &format!("App '{id}' does not exist"))
}

fn unknown_group(group: &str) -> SimResponse {
    let group = normalize_app_id(group);
    json_message(404, &format!("Group '{group}' does not exist"))
}

fn not_found_uri(raw_path: &str) -> SimResponse {
    json_message(404, &format!("URI not found: {raw_path}"))
}

fn method_not_allowed(allow: &str) -> SimResponse {
    json_message(405, "Method Not Allowed").with_header("Allow", allow)
}

/// Jetty's HTML error page (the shape of `ErrorHandler` in Jetty 9; the footer is shortened).
fn jetty_error(status: u16, message: &str, uri: &str) -> SimResponse {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let message = escape(message);
    let body = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n\
         <title>Error {status} {message}</title>\n</head>\n<body><h2>HTTP ERROR {status}</h2>\n\
         <p>Problem accessing {}. Reason:\n<pre>    {message}</pre></p><hr>\
         <a href=\"http://eclipse.org/jetty\">Powered by Jetty://</a><hr/>\n\n</body>\n</html>\n",
        escape(uri)
    );
    SimResponse::new(status, "text/html;charset=ISO-8859-1", body)
}

/// Jetty's answer to an undecodable request URI.
fn jetty_bad_uri() -> SimResponse {
    SimResponse::new(
        400,
        "text/html;charset=iso-8859-1",
        "<h1>Bad Message 400</h1><pre>reason: Bad URI</pre>",
    )
}
