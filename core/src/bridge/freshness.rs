//! The rule between events and syncs. A sync plans from a Marathon snapshot that events may
//! overtake while it is read and written: a task or app an event touched after the snapshot was
//! asked for is left to the event. And what is known of each app version is remembered — its
//! labels in place in KV, the services its tasks become — so further tasks of that version need
//! no app read.
//!
//! Both workflows change this state only through the methods here; when to call them is decided
//! in `task.rs` and `sync.rs`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;

use crate::plan::{AppServices, Exclusions};

/// Apps whose synced label version is remembered. Syncs prune the list to Marathon's apps; without
/// syncs it is cleared when full, which costs only an app read per app.
const APP_VERSIONS_REMEMBERED: usize = 16_384;

/// The update count when a sync asked Marathon for its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SnapshotEpoch(u64);

#[derive(Debug, Default)]
pub(super) struct Freshness {
    /// Counts updates started.
    epoch: u64,
    /// Tasks and apps (by service name) touched while a sync runs, with the epoch of the touch.
    touched_tasks: BTreeMap<String, u64>,
    touched_apps: BTreeMap<String, u64>,
    /// The app version whose labels an update last made KV match, by service name. Marathon gives
    /// every change of an app a new version, so a task of that version needs no label sync: a
    /// rolling start of N tasks reads the app once, not N times. Pruned to Marathon's apps by
    /// every sync, so it holds at most one entry per app.
    label_versions: BTreeMap<String, String>,
    /// The services each app's tasks become, as of the last read of the app (by a sync or an
    /// update), by service name; pruned like `label_versions`.
    services: BTreeMap<String, AppServices>,
}

impl Freshness {
    /// An update starts.
    pub(super) fn update_started(&mut self) {
        self.epoch += 1;
    }

    /// An update changed task `id` while a sync runs. (With none running, nothing can undo it,
    /// and remembering it would only grow memory with every event.)
    pub(super) fn task_touched_during_sync(&mut self, id: &str) {
        self.touched_tasks.insert(String::from(id), self.epoch);
    }

    /// An update synced the labels of service `name` while a sync runs.
    pub(super) fn app_touched_during_sync(&mut self, name: &str) {
        self.touched_apps.insert(String::from(name), self.epoch);
    }

    /// A sync asks Marathon for a snapshot now: earlier touches are older than it.
    pub(super) fn snapshot_requested(&mut self) -> SnapshotEpoch {
        self.touched_tasks.clear();
        self.touched_apps.clear();
        SnapshotEpoch(self.epoch)
    }

    /// What events changed after `snapshot`: the sync leaves these alone.
    pub(super) fn newer_than(&self, snapshot: SnapshotEpoch) -> Exclusions {
        let newer = |touched: &BTreeMap<String, u64>| -> BTreeSet<String> {
            touched
                .iter()
                .filter(|(_, &epoch)| epoch > snapshot.0)
                .map(|(key, _)| key.clone())
                .collect()
        };
        Exclusions {
            tasks: newer(&self.touched_tasks),
            app_names: newer(&self.touched_apps),
        }
    }

    /// True if KV holds the labels of `name` as of app `version`.
    pub(super) fn labels_match(&self, name: &str, version: Option<&String>) -> bool {
        version.is_some() && self.label_versions.get(name) == version
    }

    /// KV now holds the labels of `name` as of `version`.
    pub(super) fn labels_synced(&mut self, name: &str, version: &str) {
        let full = self.label_versions.len() >= APP_VERSIONS_REMEMBERED;
        if full && !self.label_versions.contains_key(name) {
            self.label_versions.clear();
        }
        self.label_versions
            .insert(String::from(name), String::from(version));
    }

    /// What KV holds for `name` is unknown (a write failed, or the app ended).
    pub(super) fn labels_unknown(&mut self, name: &str) {
        self.label_versions.remove(name);
    }

    /// The services the tasks of app `name` become, if the app was read at `version` (or at all,
    /// for an update that names no version).
    pub(super) fn services_of(&self, name: &str, version: Option<&str>) -> Option<&AppServices> {
        self.services
            .get(name)
            .filter(|known| version.is_none() || known.version() == version)
    }

    /// The app `name` was read and its tasks become `services`.
    pub(super) fn remember_services(&mut self, name: &str, services: AppServices) {
        if self.services.len() >= APP_VERSIONS_REMEMBERED && !self.services.contains_key(name) {
            self.services.clear();
        }
        self.services.insert(String::from(name), services);
    }

    /// A sync read every app: what their tasks become replaces what was known.
    pub(super) fn learn_services(&mut self, services: BTreeMap<String, AppServices>) {
        self.services = services;
    }

    /// Forgets what is known of apps Marathon no longer has.
    pub(super) fn keep_apps(&mut self, live_names: &BTreeSet<String>) {
        self.label_versions
            .retain(|name, _| live_names.contains(name));
        self.services.retain(|name, _| live_names.contains(name));
    }

    /// True if no touch is remembered (nothing for a sync to leave alone).
    #[cfg(test)]
    pub(super) fn remembers_no_touch(&self) -> bool {
        self.touched_tasks.is_empty() && self.touched_apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_after_the_snapshot_are_excluded_and_earlier_ones_not() {
        let mut f = Freshness::default();
        f.update_started();
        f.task_touched_during_sync("old");
        let snapshot = f.snapshot_requested();
        f.update_started();
        f.task_touched_during_sync("new");
        f.app_touched_during_sync("web");
        let excluded = f.newer_than(snapshot);
        assert_eq!(
            excluded.tasks.into_iter().collect::<alloc::vec::Vec<_>>(),
            ["new"]
        );
        assert!(excluded.app_names.contains("web"));
    }

    #[test]
    fn label_versions_need_a_version_and_follow_the_live_apps() {
        let mut f = Freshness::default();
        f.labels_synced("web", "v1");
        assert!(f.labels_match("web", Some(&"v1".into())));
        assert!(!f.labels_match("web", None));
        assert!(!f.labels_match("web", Some(&"v2".into())));
        f.keep_apps(&BTreeSet::new());
        assert!(!f.labels_match("web", Some(&"v1".into())));
    }
}
