//! What the simulated Marathon checks before it acts: app bodies (the subset it applies,
//! [`AppUpdate`], with Play JSON's error paths), app ids against `PathId`'s pattern, label
//! selectors, `embed` names, callback URLs as `java.net.URL` would take them, and Jetty's
//! canonical paths.
//!
//! Not here: what happens once a request passes (`super::routes`, `super`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde_json::Value;

use super::model::{MarathonVersion, SimApp, SimPort};
use super::routes::{invalid_json, json, json_message};
use super::SimMarathon;
use crate::wire::{SimResponse, J};

impl SimMarathon {
    pub(super) fn parse_app_body(
        &self,
        body: &[u8],
        id_required: bool,
    ) -> Result<AppUpdate, SimResponse> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let message = format!("{e}");
            if self.version >= MarathonVersion::V1_4 {
                json(
                    400,
                    &J::obj([
                        ("message", J::s("Invalid JSON")),
                        ("details", J::s(message)),
                    ]),
                )
            } else {
                json_message(400, &message)
            }
        })?;
        let Value::Object(map) = value else {
            return Err(invalid_json("/", "error.expected.jsobject"));
        };
        let mut update = AppUpdate::default();
        match map.get("id") {
            Some(Value::String(id)) => {
                let id = normalize_app_id(id);
                validate_app_id(&id)?;
                update.id = Some(id);
            }
            Some(_) => return Err(invalid_json("/id", "error.expected.jsstring")),
            None if id_required => return Err(invalid_json("/id", "error.path.missing")),
            None => {}
        }
        if let Some(labels) = map.get("labels") {
            let Value::Object(labels) = labels else {
                return Err(invalid_json("/labels", "error.expected.jsobject"));
            };
            let mut out = BTreeMap::new();
            for (k, v) in labels {
                let Value::String(v) = v else {
                    return Err(invalid_json(
                        &format!("/labels/{k}"),
                        "error.expected.jsstring",
                    ));
                };
                out.insert(k.clone(), v.clone());
            }
            update.labels = Some(out);
        }
        if let Some(n) = map.get("instances") {
            match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => update.instances = Some(n),
                None => return Err(invalid_json("/instances", "error.expected.jsnumber")),
            }
        }
        if let Some(cmd) = map.get("cmd") {
            match cmd {
                Value::String(c) => update.cmd = Some(c.clone()),
                Value::Null => {}
                _ => return Err(invalid_json("/cmd", "error.expected.jsstring")),
            }
        }
        let port_of = |v: &Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
        if let Some(ports) = map.get("ports") {
            let parsed: Option<Vec<u16>> = ports
                .as_array()
                .and_then(|a| a.iter().map(port_of).collect());
            match parsed {
                Some(p) => update.ports = Some(p),
                None => return Err(invalid_json("/ports", "error.expected.jsarray")),
            }
        }
        if let Some(defs) = map.get("portDefinitions") {
            let parsed: Option<Vec<(u16, SimPort)>> = defs.as_array().and_then(|a| {
                a.iter()
                    .map(|d| {
                        let port = d.get("port").and_then(port_of)?;
                        let name = match d.get("name") {
                            None | Some(Value::Null) => None,
                            Some(Value::String(n)) => Some(n.clone()),
                            Some(_) => return None,
                        };
                        let labels = match d.get("labels") {
                            None | Some(Value::Null) => Vec::new(),
                            Some(Value::Object(l)) => l
                                .iter()
                                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                                .collect::<Option<Vec<_>>>()?,
                            Some(_) => return None,
                        };
                        let spec = SimPort {
                            name,
                            labels,
                            container_port: None,
                        };
                        Some((port, spec))
                    })
                    .collect()
            });
            match parsed {
                Some(p) => {
                    update.ports = Some(p.iter().map(|(port, _)| *port).collect());
                    update.port_specs = Some(p.into_iter().map(|(_, spec)| spec).collect());
                }
                None => return Err(invalid_json("/portDefinitions", "error.expected.jsarray")),
            }
        }
        Ok(update)
    }
}

/// The subset of an app body the simulator applies.
#[derive(Debug, Default)]
pub(super) struct AppUpdate {
    pub(super) id: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    instances: Option<u32>,
    cmd: Option<String>,
    ports: Option<Vec<u16>>,
    port_specs: Option<Vec<SimPort>>,
}

impl AppUpdate {
    pub(super) fn apply(&self, app: &mut SimApp) {
        if let Some(l) = &self.labels {
            app.labels = l.clone();
        }
        if let Some(n) = self.instances {
            app.instances = n;
        }
        if let Some(c) = &self.cmd {
            app.cmd = c.clone();
        }
        if let Some(p) = &self.ports {
            app.service_ports = p.clone();
        }
        if let Some(p) = &self.port_specs {
            app.port_specs = p.clone();
        }
    }
}

/// One term of a Marathon label selector.
pub(super) enum LabelTerm {
    Exists(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelTerm {
    pub(super) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelTerm::Exists(k) => labels.contains_key(k),
            LabelTerm::Eq(k, v) => labels.get(k) == Some(v),
            LabelTerm::Ne(k, v) => labels.get(k) != Some(v),
            LabelTerm::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelTerm::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        }
    }
}

/// Parses `k`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, comma-separated (AND). `None`
/// when unparseable; the simulator then lists no apps (Marathon's exact error is not modelled).
pub(super) fn parse_label_selector(selector: &str) -> Option<Vec<LabelTerm>> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return None;
        }
        let set = |rest: &str| -> Option<Vec<String>> {
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            Some(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let term = if let Some((k, v)) = part.split_once("==") {
            LabelTerm::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelTerm::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            LabelTerm::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            LabelTerm::In(k.trim().into(), set(rest)?)
        } else if part.contains(|c: char| c.is_whitespace() || "()=!".contains(c)) {
            return None;
        } else {
            LabelTerm::Exists(part.into())
        };
        terms.push(term);
    }
    Some(terms)
}

/// `apps.tasks` / `app.tasks` / `group.apps.tasks` → `tasks`.
pub(super) fn embed_name(value: &str) -> &str {
    ["group.apps.", "apps.", "app."]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .unwrap_or(value)
}

/// Absolute app id with empty segments dropped (Marathon's `PathId` parsing).
pub(super) fn normalize_app_id(id: &str) -> String {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

const ID_PATTERN: &str = "^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$";

/// Checks every segment against `PathId`'s pattern; 422 "Object is not valid" otherwise.
pub(super) fn validate_app_id(id: &str) -> Result<(), SimResponse> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let segment_ok = |s: &str| s == "." || s == ".." || s.split('.').all(label_ok);
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    if !segments.is_empty() && segments.iter().all(|s| segment_ok(s)) {
        return Ok(());
    }
    Err(json(
        422,
        &J::obj([
            ("message", J::s("Object is not valid")),
            (
                "details",
                J::Arr(vec![J::obj([
                    ("path", J::s("/id")),
                    (
                        "errors",
                        J::Arr(vec![J::s(format!(
                            "must fully match regular expression '{ID_PATTERN}'"
                        ))]),
                    ),
                ])]),
            ),
        ]),
    ))
}

/// What `new java.net.URL(url)` would complain about (`None` if it accepts it).
pub(super) fn java_url_error(url: Option<&str>) -> Option<J> {
    let Some(url) = url else {
        // `new URL(null)` fails with a MalformedURLException without a message.
        return Some(J::Null);
    };
    let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    match scheme {
        None => Some(J::s(format!("no protocol: {url}"))),
        Some(s) => {
            let s = s.to_ascii_lowercase();
            let known = ["http", "https", "ftp", "file", "jar", "mailto", "netdoc"];
            (!known.contains(&s.as_str())).then(|| J::s(format!("unknown protocol: {s}")))
        }
    }
}

/// Resolves `.` and `..` segments like Jetty; `None` if `..` climbs above the root.
pub(super) fn canonical_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for segment in path[1..].split('/') {
        match segment {
            "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let mut p = format!("/{}", out.join("/"));
    if trailing && !p.ends_with('/') {
        p.push('/');
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        assert_eq!(
            canonical_path("/v2/apps/../info").as_deref(),
            Some("/v2/info")
        );
        assert_eq!(canonical_path("/.."), None);
        assert_eq!(canonical_path("x"), None);
    }

    #[test]
    fn label_selectors() {
        let labels: BTreeMap<String, String> =
            [("a".to_string(), "1".to_string())].into_iter().collect();
        let check = |s: &str| parse_label_selector(s).map(|t| t.iter().all(|t| t.matches(&labels)));
        assert_eq!(check("a"), Some(true));
        assert_eq!(check("a==1,b"), Some(false));
        assert_eq!(check("a in (1, 2)"), Some(true));
        assert_eq!(check("a notin (1)"), Some(false));
        assert_eq!(check("b!=x"), Some(true));
        assert_eq!(check("a (("), None);
    }
}
