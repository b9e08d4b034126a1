//! Which Consul ACL permission each of the bridge's requests needs, and whether an answer says the
//! token lacks it: [`AclRule::of_request`] is the one mapping from a request to its rule, and
//! [`AclRule::denial`] reads a refusal, so a failed request's log line can say
//! "the token lacks service:write on \"web\"" instead of a bare 403.
//!
//! As Consul 1.8.7 with `default_policy = "deny"` answers (checked on the real binary): writes of
//! services, checks, sessions, the catalog and single KV keys are `403 Permission denied`; a
//! transaction with a refused operation is `409` with `Permission denied` in that operation's
//! entry of `Errors`; listings (agent services and checks, catalog nodes, critical checks, a
//! recursive KV read) are never refused, only filtered down to what the token may read, so no
//! answer can name their rule (the README's policy lists them all the same).
//!
//! The rules follow Consul's: an agent registration needs `service:write` on the service's name;
//! deregistering it, and updating or removing one of its checks, `service:write` on the name of
//! the service the agent holds under that id; a catalog write `node:write` on the node (and
//! `service:write` on the service); a KV transaction `key_prefix` write on `consular/` (and, under
//! `--ha`, read on the lock key its guard checks); lock and status keys `key` read or write;
//! sessions `session:write` on the main agent's node. Not here: what the bridge does about a
//! refusal (it logs it and retries as for any failure).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;

use super::external::{CATALOG_DEREGISTER_PATH, CATALOG_REGISTER_PATH};
use super::kv::{KV_ROOT, TXN_PATH};
use super::service::REGISTER_PATH;
use super::session::SESSION_CREATE_PATH;
use crate::encoding::percent_decode;
use crate::io::{Method, Target};

/// The permission one request needs. Names in it come from the bridge's own request (its path or
/// its JSON body), never from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRule {
    /// `service:write` on a service name: an agent registration.
    ServiceWrite {
        /// The service's name.
        name: String,
    },
    /// `service:write` on the service the agent holds under an id (Consul resolves the name).
    ServiceWriteOf {
        /// `"service"` or `"check"`: what the id names.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// `node:write` on a catalog node, and `service:write` on the service if one is named.
    CatalogWrite {
        /// The node.
        node: String,
        /// The service's name (a registration) or id (a deregistration), when there is one.
        service: Option<String>,
    },
    /// A KV transaction: `key_prefix` write on [`KV_ROOT`]; its first operation may be a leader's
    /// guard, which needs read on the lock key.
    KvTxn {
        /// The key the guard (operation 0) checks, under `--ha`.
        guard_key: Option<String>,
    },
    /// `key` read or write on one key (the `--ha` lock and status keys).
    Key {
        /// `"read"` or `"write"`.
        access: &'static str,
        /// The key.
        key: String,
    },
    /// `session:write` on the node of the agent that receives the request.
    SessionWrite,
}

/// Why an answer is a refusal of the token: the rule, and for a transaction which of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDenial<'a> {
    rule: &'a AclRule,
    /// For a [`AclRule::KvTxn`]: the index of the refused operation, if the answer names it.
    op_index: Option<usize>,
}

impl fmt::Display for AclDenial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the token lacks ")?;
        match self.rule {
            AclRule::ServiceWrite { name } => write!(f, "service:write on {name:?}"),
            AclRule::ServiceWriteOf { what, id } => {
                write!(f, "service:write on the service of {what} {id:?}")
            }
            AclRule::CatalogWrite { node, service } => {
                write!(f, "node:write on {node:?}")?;
                match service {
                    Some(service) => write!(f, " or service:write on {service:?}"),
                    None => Ok(()),
                }
            }
            AclRule::KvTxn { guard_key } => match (guard_key, self.op_index) {
                (Some(key), Some(0)) => write!(f, "key:read on {key:?} (the --ha lock key)"),
                _ => write!(f, "key_prefix:write on {KV_ROOT:?}"),
            },
            AclRule::Key { access, key } => write!(f, "key:{access} on {key:?}"),
            AclRule::SessionWrite => {
                f.write_str("session:write on the node of the Consul agent it talks to")
            }
        }
    }
}

impl AclRule {
    /// The rule a request to `target` needs, or `None` for one Consul never refuses (a listing,
    /// or a request to Marathon). `body` is the request's own JSON.
    pub fn of_request(
        target: &Target,
        method: Method,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> Option<AclRule> {
        if matches!(target, Target::Marathon) {
            return None;
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        // Ids and keys are percent-encoded in the path; the rule names them as Consul does.
        let id_after = |prefix: &str| {
            let encoded = path.strip_prefix(prefix)?;
            Some(String::from_utf8_lossy(&percent_decode(encoded)).into_owned())
        };
        let rule = match (method, path) {
            (Method::Put, REGISTER_PATH) => AclRule::ServiceWrite {
                name: parse_body::<AgentRegistration>(body)?.name,
            },
            (Method::Put, CATALOG_REGISTER_PATH) => {
                let registration = parse_body::<CatalogRegistration>(body)?;
                AclRule::CatalogWrite {
                    node: registration.node,
                    service: registration.service.map(|s| s.name),
                }
            }
            (Method::Put, CATALOG_DEREGISTER_PATH) => {
                let deregistration = parse_body::<CatalogDeregistration>(body)?;
                AclRule::CatalogWrite {
                    node: deregistration.node,
                    service: deregistration.service_id,
                }
            }
            (Method::Put, TXN_PATH) => AclRule::KvTxn {
                guard_key: parse_body::<Vec<TxnEntry>>(body)
                    .and_then(|ops| ops.into_iter().next())
                    .filter(|op| op.kv.verb == "check-session")
                    .map(|op| op.kv.key),
            },
            (Method::Put, SESSION_CREATE_PATH) => AclRule::SessionWrite,
            (Method::Put, _) if path.starts_with("/v1/session/") => AclRule::SessionWrite,
            (Method::Put, _) if path.starts_with("/v1/agent/service/deregister/") => {
                AclRule::ServiceWriteOf {
                    what: "service",
                    id: id_after("/v1/agent/service/deregister/")?,
                }
            }
            (Method::Put, _) if path.starts_with("/v1/agent/check/") => {
                let id = id_after("/v1/agent/check/update/")
                    .or_else(|| id_after("/v1/agent/check/deregister/"))?;
                AclRule::ServiceWriteOf { what: "check", id }
            }
            (_, _) if path.starts_with("/v1/kv/") => {
                // A recursive read is filtered, never refused.
                if query.split('&').any(|p| p == "recurse" || p == "keys") {
                    return None;
                }
                let access = if method == Method::Get {
                    "read"
                } else {
                    "write"
                };
                AclRule::Key {
                    access,
                    key: id_after("/v1/kv/")?,
                }
            }
            _ => return None,
        };
        Some(rule)
    }

    /// Whether `status` and `body`, the answer to a request of this rule, say the token lacks
    /// it: `403`, or for a transaction `409` with `Permission denied` in its `Errors`.
    pub fn denial(&self, status: u16, body: &[u8]) -> Option<AclDenial<'_>> {
        match (self, status) {
            (_, 403) => Some(AclDenial {
                rule: self,
                op_index: None,
            }),
            (AclRule::KvTxn { .. }, 409) => {
                let answer: TxnAnswer = serde_json::from_slice(body).ok()?;
                let refused = answer.errors?.into_iter().find(|e| {
                    e.what
                        .as_deref()
                        .is_some_and(|w| w.contains("Permission denied"))
                })?;
                Some(AclDenial {
                    rule: self,
                    op_index: refused.op_index,
                })
            }
            _ => None,
        }
    }
}

fn parse_body<'de, T: Deserialize<'de>>(body: Option<&'de [u8]>) -> Option<T> {
    serde_json::from_slice(body?).ok()
}

#[derive(Deserialize)]
struct AgentRegistration {
    #[serde(rename = "Name")]
    name: String,
}

#[derive(Deserialize)]
struct CatalogRegistration {
    #[serde(rename = "Node")]
    node: String,
    #[serde(rename = "Service", default)]
    service: Option<CatalogService>,
}

#[derive(Deserialize)]
struct CatalogService {
    #[serde(rename = "Service")]
    name: String,
}

#[derive(Deserialize)]
struct CatalogDeregistration {
    #[serde(rename = "Node")]
    node: String,
    #[serde(rename = "ServiceID", default)]
    service_id: Option<String>,
}

#[derive(Deserialize)]
struct TxnEntry {
    #[serde(rename = "KV")]
    kv: TxnKv,
}

#[derive(Deserialize)]
struct TxnKv {
    #[serde(rename = "Verb")]
    verb: String,
    #[serde(rename = "Key")]
    key: String,
}

#[derive(Deserialize)]
struct TxnAnswer {
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
struct TxnError {
    #[serde(rename = "OpIndex", default)]
    op_index: Option<usize>,
    #[serde(rename = "What", default)]
    what: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn named(target: Target, method: Method, path: &str, body: &str) -> Option<String> {
        let rule = AclRule::of_request(&target, method, path, Some(body.as_bytes()))?;
        let denial = rule.denial(403, b"Permission denied")?;
        Some(denial.to_string())
    }

    #[test]
    fn each_write_names_its_rule() {
        let agent = || Target::Agent("10.0.0.7".into());
        assert_eq!(
            named(
                agent(),
                Method::Put,
                REGISTER_PATH,
                r#"{"ID":"w-1","Name":"web"}"#
            )
            .unwrap(),
            "the token lacks service:write on \"web\""
        );
        assert_eq!(
            named(agent(), Method::Put, "/v1/agent/service/deregister/w-1", "").unwrap(),
            "the token lacks service:write on the service of service \"w-1\""
        );
        assert_eq!(
            named(
                agent(),
                Method::Put,
                "/v1/agent/check/update/consular%3Aw-1",
                "{}"
            )
            .unwrap(),
            "the token lacks service:write on the service of check \"consular:w-1\""
        );
        assert_eq!(
            named(
                Target::Consul,
                Method::Put,
                CATALOG_REGISTER_PATH,
                r#"{"Node":"h1","Service":{"ID":"w-1","Service":"web"}}"#
            )
            .unwrap(),
            "the token lacks node:write on \"h1\" or service:write on \"web\""
        );
        assert_eq!(
            named(Target::Consul, Method::Put, SESSION_CREATE_PATH, "{}").unwrap(),
            "the token lacks session:write on the node of the Consul agent it talks to"
        );
        assert_eq!(
            named(
                Target::Consul,
                Method::Get,
                "/v1/kv/service/consular/c/leader?index=3&wait=5s",
                ""
            )
            .unwrap(),
            "the token lacks key:read on \"service/consular/c/leader\""
        );
        assert_eq!(
            named(
                Target::Consul,
                Method::Put,
                "/v1/kv/service/consular/c/leader?acquire=s",
                "x"
            )
            .unwrap(),
            "the token lacks key:write on \"service/consular/c/leader\""
        );
    }

    #[test]
    fn a_refused_transaction_names_the_guard_or_the_kv_prefix() {
        let guarded = r#"[{"KV":{"Key":"service/consular/c/leader","Session":"s","Verb":"check-session"}},{"KV":{"Key":"consular/web/a","Verb":"cas","Index":0,"Value":"eA=="}}]"#;
        let rule = AclRule::of_request(
            &Target::Consul,
            Method::Put,
            TXN_PATH,
            Some(guarded.as_bytes()),
        )
        .unwrap();
        let refused = |index: usize| {
            alloc::format!(
                r#"{{"Results":null,"Errors":[{{"OpIndex":{index},"What":"Permission denied"}}]}}"#
            )
        };
        assert_eq!(
            rule.denial(409, refused(0).as_bytes()).unwrap().to_string(),
            "the token lacks key:read on \"service/consular/c/leader\" (the --ha lock key)"
        );
        assert_eq!(
            rule.denial(409, refused(1).as_bytes()).unwrap().to_string(),
            "the token lacks key_prefix:write on \"consular/\""
        );
        // A conflict (the index moved) is a 409 too, but not a refusal.
        let conflict = br#"{"Errors":[{"OpIndex":1,"What":"failed to set key \"consular/web/a\", index is stale"}]}"#;
        assert_eq!(rule.denial(409, conflict), None);
        assert_eq!(rule.denial(409, b"not json"), None);
        assert_eq!(rule.denial(500, b"Permission denied"), None);
    }

    #[test]
    fn listings_and_marathon_have_no_rule() {
        for path in [
            "/v1/agent/services",
            "/v1/agent/checks",
            "/v1/catalog/nodes",
            "/v1/health/state/critical",
            "/v1/kv/consular/?recurse",
            "/v1/kv/consular/?keys&separator=/",
        ] {
            assert_eq!(
                AclRule::of_request(&Target::Consul, Method::Get, path, None),
                None
            );
        }
        assert_eq!(
            AclRule::of_request(&Target::Marathon, Method::Put, REGISTER_PATH, Some(b"{}")),
            None
        );
        // A body that does not parse names nothing rather than something wrong.
        assert_eq!(
            AclRule::of_request(&Target::Consul, Method::Put, REGISTER_PATH, Some(b"[")),
            None
        );
    }
}
