//! Consul checks on the services the bridge registers: their definitions in a registration body,
//! the agent's check listing, and the status writes of mirrored checks. Which checks a service
//! gets is decided in [`crate::plan::services`].
//!
//! Consul 1.8's agent lists a check without its definition (`Definition` is empty), so every
//! check's `Notes` spell the definition out: comparing notes compares definitions. A mirrored
//! check is a TTL check whose status only the bridge sets; registering it again without a status
//! keeps the one it has (Consul 1.8.7), so a re-registration never flips it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::encoding::encode_segment;
use crate::error::ParseError;

/// `GET` lists the checks of the agent that receives it.
pub const AGENT_CHECKS_PATH: &str = "/v1/agent/checks";
/// The prefix of every check id the bridge makes: `consular:<service id>[:<n>]`.
pub const CHECK_ID_PREFIX: &str = "consular:";
/// The TTL of a mirrored check: long enough never to expire, so a stopped bridge leaves the last
/// status Marathon gave, rather than failing every service it registered.
pub const MIRROR_TTL: &str = "87600h";

/// `PUT` sets the status and output of TTL check `id`.
pub fn check_update_path(id: &str) -> String {
    alloc::format!("/v1/agent/check/update/{}", encode_segment(id))
}

/// `PUT` removes check `id` from the agent that receives it.
pub fn check_deregister_path(id: &str) -> String {
    alloc::format!("/v1/agent/check/deregister/{}", encode_segment(id))
}

/// A check's status, as Consul names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum CheckStatus {
    /// Healthy.
    #[serde(rename = "passing")]
    Passing,
    /// Failing: the service is left out of `?passing` queries and DNS.
    #[serde(rename = "critical")]
    Critical,
}

impl CheckStatus {
    fn parse(status: &str) -> Option<Self> {
        match status {
            "passing" => Some(CheckStatus::Passing),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// The status a mirrored check should show, and the output that explains it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CheckState {
    /// The status.
    #[serde(rename = "Status")]
    pub status: CheckStatus,
    /// The output: which Marathon check fails and why, or that all pass.
    #[serde(rename = "Output")]
    pub output: String,
}

impl CheckState {
    /// The `PUT /v1/agent/check/update/<id>` body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How Consul runs a check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckProbe {
    /// A TTL check whose status the bridge sets from Marathon's health results.
    Mirror,
    /// The agent requests `url` (`skip_verify`: HTTPS without certificate checks, as Marathon's
    /// HTTPS checks do).
    Http {
        /// The URL.
        url: String,
        /// Skip certificate verification.
        skip_verify: bool,
    },
    /// The agent connects to `address` (`host:port`).
    Tcp {
        /// `host:port`.
        address: String,
    },
}

/// A check of a registered service, as the registration body defines it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceCheck {
    /// `consular:<service id>` (mirrored) or `consular:<service id>:<n>` (Marathon's check `n`).
    pub id: String,
    /// The name Consul shows.
    pub name: String,
    /// The definition in words (see the module note).
    pub notes: String,
    /// How it runs.
    pub probe: CheckProbe,
    /// Seconds between runs and per run (agent-run checks).
    pub interval_seconds: u32,
    /// Seconds a run may take.
    pub timeout_seconds: u32,
    /// For a mirrored check: the status to write after registering, if it is known and not
    /// already there. Never part of the registration body (see the module note).
    pub state: Option<CheckState>,
}

impl Serialize for ServiceCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("CheckID", &self.id)?;
        map.serialize_entry("Name", &self.name)?;
        map.serialize_entry("Notes", &self.notes)?;
        match &self.probe {
            CheckProbe::Mirror => map.serialize_entry("TTL", MIRROR_TTL)?,
            CheckProbe::Http { url, skip_verify } => {
                map.serialize_entry("HTTP", url)?;
                if *skip_verify {
                    map.serialize_entry("TLSSkipVerify", &true)?;
                }
            }
            CheckProbe::Tcp { address } => map.serialize_entry("TCP", address)?,
        }
        if self.probe != CheckProbe::Mirror {
            let interval = alloc::format!("{}s", self.interval_seconds);
            map.serialize_entry("Interval", &interval)?;
            let timeout = alloc::format!("{}s", self.timeout_seconds);
            map.serialize_entry("Timeout", &timeout)?;
        }
        map.end()
    }
}

/// A check as an agent lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCheck {
    /// The check id.
    pub id: String,
    /// The service it belongs to (empty for node checks).
    pub service_id: String,
    /// The name.
    pub name: String,
    /// The notes.
    pub notes: String,
    /// The status; `None` for `warning` or anything else.
    pub status: Option<CheckStatus>,
}

impl ListedCheck {
    /// True if `check` defines this check as it is (its status aside).
    pub fn is_defined_by(&self, check: &ServiceCheck) -> bool {
        self.id == check.id && self.name == check.name && self.notes == check.notes
    }
}

/// A check as an agent's map (keyed by id) or a node's list (with `CheckID`) gives it.
#[derive(Deserialize)]
pub(super) struct CheckEntry {
    #[serde(
        rename = "CheckID",
        default,
        deserialize_with = "super::service::string_or_empty"
    )]
    id: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Notes", default)]
    notes: String,
    #[serde(rename = "Status", default)]
    status: String,
}

impl CheckEntry {
    /// The check, as id `id` (the agent's map key) or, for `None`, its own `CheckID`.
    pub(super) fn into_listed(self, id: Option<String>) -> ListedCheck {
        ListedCheck {
            id: id.unwrap_or(self.id),
            service_id: self.service_id,
            name: self.name,
            notes: self.notes,
            status: CheckStatus::parse(&self.status),
        }
    }
}

/// Parses `GET /v1/agent/checks`, a map keyed by check id.
pub fn parse_agent_checks(body: &[u8]) -> Result<Vec<ListedCheck>, ParseError> {
    let checks: BTreeMap<String, CheckEntry> = serde_json::from_slice(body)?;
    Ok(checks
        .into_iter()
        .map(|(id, c)| c.into_listed(Some(id)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_what_consul_1_8_takes() {
        let http = ServiceCheck {
            id: "consular:t:0:1".into(),
            name: "n".into(),
            notes: "x".into(),
            probe: CheckProbe::Http {
                url: "https://h:1/p".into(),
                skip_verify: true,
            },
            interval_seconds: 10,
            timeout_seconds: 2,
            state: None,
        };
        assert_eq!(
            serde_json::to_string(&http).unwrap(),
            r#"{"CheckID":"consular:t:0:1","Name":"n","Notes":"x","HTTP":"https://h:1/p","TLSSkipVerify":true,"Interval":"10s","Timeout":"2s"}"#
        );
        let mirror = ServiceCheck {
            probe: CheckProbe::Mirror,
            state: Some(CheckState {
                status: CheckStatus::Passing,
                output: "ok".into(),
            }),
            ..http
        };
        assert_eq!(
            serde_json::to_string(&mirror).unwrap(),
            r#"{"CheckID":"consular:t:0:1","Name":"n","Notes":"x","TTL":"87600h"}"#
        );
        assert_eq!(
            mirror.state.unwrap().to_json(),
            br#"{"Status":"passing","Output":"ok"}"#
        );
        assert_eq!(
            check_update_path("consular:a/../b"),
            "/v1/agent/check/update/consular%3Aa%2F..%2Fb"
        );
    }

    #[test]
    fn listings_keep_the_key_and_unknown_statuses_are_none() {
        let checks = parse_agent_checks(
            br#"{"c1":{"CheckID":"x","ServiceID":"s","Name":"n","Notes":"d","Status":"warning"},
                 "c2":{"Status":"passing"}}"#,
        )
        .unwrap();
        assert_eq!(checks[0].id, "c1");
        assert_eq!(checks[0].status, None);
        assert_eq!(checks[1].status, Some(CheckStatus::Passing));
        assert!(parse_agent_checks(b"[]").is_err());
    }
}
