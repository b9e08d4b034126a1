//! marathon-consul's leftovers (`--migrate-marathon-consul`): which of the services a sync observed
//! were registered by allegro/marathon-consul, so a bridge that replaces it can remove them. A pure
//! rule over a listing; when it is applied (once per process) and the deregistrations themselves
//! are the bridge's, and nothing here knows about requests.
//!
//! What marathon-consul registers (its `consul/consul.go`, `marathonTaskToConsulServices`): every
//! service carries its `--consul-tag` (default `marathon`, `config/config.go`) and
//! `marathon-task:<task id>` (`service/service.go`), has the id `<task id>_<name>_<port>`, and sits
//! on the agent of the task's host. Only the default tag is recognised: a cluster that ran it with
//! another `--consul-tag` keeps those services.

use alloc::string::String;
use alloc::vec::Vec;

use super::diff::ObservedService;
use crate::consul::{Registration, APP_ID_TAG_PREFIX, REG_ID_TAG_PREFIX};
use crate::marathon::ids::MAX_ID_LEN;

/// The tag marathon-consul puts on every service it registers (its `--consul-tag` default).
pub const MARATHON_CONSUL_TAG: &str = "marathon";
/// The prefix of the tag naming the task of a marathon-consul service.
pub const MARATHON_TASK_TAG_PREFIX: &str = "marathon-task:";
/// Longest service id taken for marathon-consul's: a task id, a service name and a port. Longer
/// ones are not what it makes, and only a hostile listing would ask us to put them in a URL.
const MAX_LEFTOVER_ID_LEN: usize = 2 * MAX_ID_LEN;

/// Who registered a service, as far as the migration is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// marathon-consul: both of its tags, and an id it could have made. Removed by the migration.
    MarathonConsul,
    /// A consular, of any registration id (its ownership tags): never a leftover, whatever else
    /// it is tagged with.
    Consular,
    /// marathon-consul's tags on an id it never makes (empty, a dot segment, a `/`, control
    /// characters, too long): left alone rather than put into a URL.
    ImplausibleId,
    /// Anyone else, including a service tagged `marathon` without a task.
    Foreign,
}

/// Who registered `registration`.
pub fn origin(registration: &Registration) -> Origin {
    let tags = &registration.tags;
    let consular = tags
        .iter()
        .any(|t| t.starts_with(REG_ID_TAG_PREFIX) || t.starts_with(APP_ID_TAG_PREFIX));
    if consular {
        return Origin::Consular;
    }
    let tagged = tags.iter().any(|t| t == MARATHON_CONSUL_TAG);
    let task = tags
        .iter()
        .filter_map(|t| t.strip_prefix(MARATHON_TASK_TAG_PREFIX))
        .any(|task| !task.is_empty());
    if !(tagged && task) {
        return Origin::Foreign;
    }
    if is_plausible_id(&registration.id) {
        Origin::MarathonConsul
    } else {
        Origin::ImplausibleId
    }
}

/// `<task id>_<name>_<port>` is never empty, never a dot segment, and carries no control
/// character and no `/` (task ids have none, and marathon-consul turns the `/` of app ids into
/// its name separator); anything else is not marathon-consul's. The id is percent-encoded as one
/// segment when deregistered, but Consul decodes it before routing, so a `/` would still let its
/// path cleaning land the request elsewhere.
fn is_plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEFTOVER_ID_LEN
        && id != "."
        && id != ".."
        && !id.chars().any(|c| c.is_control() || c == '/')
}

/// What one listing holds of marathon-consul's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// `(agent address, service id)` of each of its services, in listing order.
    pub services: Vec<(String, String)>,
    /// Services with its tags but an id it never makes, left alone.
    pub implausible: usize,
}

/// marathon-consul's services among `observed`, to deregister from the agent that listed each.
pub fn marathon_consul_leftovers(observed: &[ObservedService]) -> Leftovers {
    let mut found = Leftovers::default();
    for service in observed {
        match origin(&service.registration) {
            Origin::MarathonConsul => found
                .services
                .push((service.agent.clone(), service.registration.id.clone())),
            Origin::ImplausibleId => found.implausible += 1,
            Origin::Consular | Origin::Foreign => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn service(agent: &str, id: &str, tags: &[&str]) -> ObservedService {
        ObservedService {
            agent: agent.into(),
            registration: Registration {
                name: String::from("web"),
                id: id.into(),
                address: String::from("10.0.0.1"),
                tags: tags.iter().map(|&t| String::from(t)).collect(),
                port: Some(31000),
                meta: BTreeMap::new(),
                checks: alloc::vec::Vec::new(),
            },
        }
    }

    const TASK: &str = "marathon-task:web.6a95bb03-6ad3-11e6-beaf-080027a7aca0";

    #[test]
    fn both_tags_make_a_leftover_on_the_agent_that_listed_it() {
        let id = "web.6a95bb03-6ad3-11e6-beaf-080027a7aca0_web_31000";
        let observed = [
            service("10.0.0.1", id, &["marathon", "public", TASK]),
            service("10.0.0.2", "other_web_1", &[TASK, "marathon"]),
        ];
        assert_eq!(
            marathon_consul_leftovers(&observed),
            Leftovers {
                services: alloc::vec![
                    ("10.0.0.1".into(), id.into()),
                    ("10.0.0.2".into(), "other_web_1".into())
                ],
                implausible: 0,
            }
        );
    }

    #[test]
    fn one_tag_alone_is_not_marathon_consul() {
        assert_eq!(
            origin(&service("h", "x", &["marathon"]).registration),
            Origin::Foreign
        );
        assert_eq!(
            origin(&service("h", "x", &[TASK]).registration),
            Origin::Foreign
        );
        // A task tag naming no task, or spelled differently, is not its tag.
        for tags in [
            &["marathon", "marathon-task:"][..],
            &["marathon", "marathon-task"],
            &["Marathon", TASK],
            &["marathon ", TASK],
        ] {
            assert_eq!(
                origin(&service("h", "x", tags).registration),
                Origin::Foreign,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn ours_are_never_leftovers_whatever_else_they_carry() {
        for tags in [
            &["consular-reg-id=consular", "consular-app-id=/web"][..],
            &["consular-reg-id=other", "marathon", TASK],
            &["marathon", TASK, "consular-app-id=/web"],
        ] {
            assert_eq!(
                origin(&service("h", "web.1", tags).registration),
                Origin::Consular,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn foreign_services_stay() {
        let observed = [
            service("h", "consul", &[]),
            service("h", "redis", &["primary", "marathon-tasks"]),
        ];
        assert_eq!(marathon_consul_leftovers(&observed), Leftovers::default());
    }

    #[test]
    fn ids_marathon_consul_never_makes_stay() {
        let long = "a".repeat(MAX_LEFTOVER_ID_LEN + 1);
        let ids = [
            "", ".", "..", "a/../b", "/", "a\nb", "a\u{7f}", "a\u{85}", &long,
        ];
        let observed: Vec<ObservedService> = ids
            .into_iter()
            .map(|id| service("h", id, &["marathon", TASK]))
            .collect();
        assert_eq!(
            marathon_consul_leftovers(&observed),
            Leftovers {
                services: Vec::new(),
                implausible: observed.len()
            }
        );
        // Dots, spaces and `%` inside are odd but harmless once encoded as one segment.
        let odd = [service("h", "my.app 1%_my.app_31000", &["marathon", TASK])];
        assert_eq!(marathon_consul_leftovers(&odd).services.len(), 1);
    }
}
