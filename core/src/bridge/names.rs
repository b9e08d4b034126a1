//! Which app owns each Consul service name. `/a/b` and `/a-b` both become `a-b`; a sync that
//! sees both skips both, and events follow the same rule: the first app seen with a name owns it
//! until a sync says otherwise, and a second app of that name is refused, never registered.
//!
//! The names also say which apps the bridge knows at all, so an `app_terminated_event` for an
//! app it has never seen changes nothing. What a refusal replies is `task.rs`'s business.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::consul::service_name;

/// Names learnt from events beyond what the last sync saw are kept up to this many; past it a new
/// name is not remembered (its app still registers), so forged events cannot grow memory.
const MAX_EVENT_CLAIMS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    App(String),
    /// Several app ids map to the name; none of them is registered.
    Clash(Vec<String>),
}

/// May an app register under its service name?
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NameClaim {
    /// The name is this app's (or was free and now is).
    Granted,
    /// Another app has the name: the ids that map to it, this one included.
    Clashes(Vec<String>),
}

#[derive(Debug, Default)]
pub(super) struct AppNames {
    owners: BTreeMap<String, Owner>,
    /// Names claimed by events since the last snapshot.
    from_events: usize,
}

impl AppNames {
    /// Replaces every claim with Marathon's snapshot: `app_ids` as the sync read them.
    pub(super) fn learn_snapshot<'a>(&mut self, app_ids: impl IntoIterator<Item = &'a str>) {
        let mut owners: BTreeMap<String, Owner> = BTreeMap::new();
        for id in app_ids {
            let name = service_name(id);
            match owners.get_mut(&name) {
                None => {
                    owners.insert(name, Owner::App(String::from(id)));
                }
                Some(Owner::App(first)) => {
                    let ids = alloc::vec![core::mem::take(first), String::from(id)];
                    owners.insert(name, Owner::Clash(ids));
                }
                Some(Owner::Clash(ids)) => ids.push(String::from(id)),
            }
        }
        self.owners = owners;
        self.from_events = 0;
    }

    /// Claims `app_id`'s service name for it, if no other app has it.
    pub(super) fn claim(&mut self, app_id: &str) -> NameClaim {
        let name = service_name(app_id);
        match self.owners.get(&name) {
            Some(Owner::App(owner)) if owner == app_id => NameClaim::Granted,
            Some(Owner::App(owner)) => {
                NameClaim::Clashes(alloc::vec![owner.clone(), String::from(app_id)])
            }
            Some(Owner::Clash(ids)) => NameClaim::Clashes(ids.clone()),
            None => {
                if self.from_events < MAX_EVENT_CLAIMS {
                    self.from_events += 1;
                    self.owners.insert(name, Owner::App(String::from(app_id)));
                }
                NameClaim::Granted
            }
        }
    }

    /// True if a sync's snapshot or an event named this app.
    pub(super) fn knows(&self, app_id: &str) -> bool {
        match self.owners.get(&service_name(app_id)) {
            Some(Owner::App(owner)) => owner == app_id,
            Some(Owner::Clash(ids)) => ids.iter().any(|id| id == app_id),
            None => false,
        }
    }

    /// The app is gone; its name is free.
    pub(super) fn forget(&mut self, app_id: &str) {
        let name = service_name(app_id);
        match self.owners.get_mut(&name) {
            Some(Owner::App(owner)) if owner == app_id => {
                self.owners.remove(&name);
            }
            Some(Owner::Clash(ids)) => {
                ids.retain(|id| id != app_id);
                if let [last] = ids.as_slice() {
                    let owner = Owner::App(last.clone());
                    self.owners.insert(name, owner);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_app_of_a_name_owns_it_and_a_snapshot_clash_refuses_both() {
        let mut names = AppNames::default();
        assert_eq!(names.claim("/a/b"), NameClaim::Granted);
        assert_eq!(names.claim("/a/b"), NameClaim::Granted);
        assert_eq!(
            names.claim("/a-b"),
            NameClaim::Clashes(alloc::vec!["/a/b".into(), "/a-b".into()])
        );
        assert!(names.knows("/a/b") && !names.knows("/a-b"));
        names.learn_snapshot(["/a/b", "/a-b", "/c"]);
        assert!(matches!(names.claim("/a/b"), NameClaim::Clashes(_)));
        assert!(matches!(names.claim("/a-b"), NameClaim::Clashes(_)));
        assert_eq!(names.claim("/c"), NameClaim::Granted);
        names.forget("/a-b");
        assert_eq!(names.claim("/a/b"), NameClaim::Granted);
        names.forget("/c");
        assert!(!names.knows("/c"));
    }
}
