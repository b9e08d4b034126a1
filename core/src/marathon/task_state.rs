//! The Mesos task states Marathon reports, and what the bridge does on each.

/// A Mesos task state, as carried in `taskStatus` and in tasks' `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// `TASK_STAGING`
    Staging,
    /// `TASK_STARTING`
    Starting,
    /// `TASK_RUNNING`
    Running,
    /// `TASK_KILLING`
    Killing,
    /// `TASK_FINISHED`
    Finished,
    /// `TASK_FAILED`
    Failed,
    /// `TASK_KILLED`
    Killed,
    /// `TASK_ERROR`
    Error,
    /// `TASK_LOST`
    Lost,
    /// `TASK_DROPPED`
    Dropped,
    /// `TASK_UNREACHABLE`
    Unreachable,
    /// `TASK_GONE`
    Gone,
    /// `TASK_GONE_BY_OPERATOR`
    GoneByOperator,
    /// `TASK_UNKNOWN`
    Unknown,
}

/// What a state change means for the task's Consul service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAction {
    /// Not serving yet: nothing to do.
    Ignore,
    /// Serving: register it and sync its app's labels.
    Register,
    /// Not serving any more: deregister it.
    Deregister,
}

impl TaskState {
    /// Every state, in Mesos' enum order.
    pub const ALL: [TaskState; 14] = [
        TaskState::Starting,
        TaskState::Running,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killed,
        TaskState::Lost,
        TaskState::Staging,
        TaskState::Error,
        TaskState::Killing,
        TaskState::Dropped,
        TaskState::Unreachable,
        TaskState::Gone,
        TaskState::GoneByOperator,
        TaskState::Unknown,
    ];

    /// Parses a Mesos state name such as `TASK_RUNNING`.
    pub fn parse(name: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The Mesos state name.
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Staging => "TASK_STAGING",
            TaskState::Starting => "TASK_STARTING",
            TaskState::Running => "TASK_RUNNING",
            TaskState::Killing => "TASK_KILLING",
            TaskState::Finished => "TASK_FINISHED",
            TaskState::Failed => "TASK_FAILED",
            TaskState::Killed => "TASK_KILLED",
            TaskState::Error => "TASK_ERROR",
            TaskState::Lost => "TASK_LOST",
            TaskState::Dropped => "TASK_DROPPED",
            TaskState::Unreachable => "TASK_UNREACHABLE",
            TaskState::Gone => "TASK_GONE",
            TaskState::GoneByOperator => "TASK_GONE_BY_OPERATOR",
            TaskState::Unknown => "TASK_UNKNOWN",
        }
    }

    /// What the bridge does when a task enters this state.
    ///
    /// KILLING deregisters at once so traffic drains before the kill completes. UNREACHABLE
    /// deregisters because nobody can reach the task; if it comes back Marathon reports RUNNING
    /// and it is registered again.
    pub fn action(self) -> TaskAction {
        match self {
            TaskState::Staging | TaskState::Starting => TaskAction::Ignore,
            TaskState::Running => TaskAction::Register,
            _ => TaskAction::Deregister,
        }
    }

    /// True for states after which the task never runs again, so a later RUNNING for the same
    /// task id must be stale. UNREACHABLE is not final: the task may come back.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TaskState::Staging | TaskState::Starting | TaskState::Running | TaskState::Unreachable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_has_an_action() {
        for state in TaskState::ALL {
            assert_eq!(TaskState::parse(state.name()), Some(state));
        }
        assert_eq!(
            TaskState::parse("TASK_RUNNING").map(TaskState::action),
            Some(TaskAction::Register)
        );
        assert_eq!(
            TaskState::parse("TASK_KILLING").map(TaskState::action),
            Some(TaskAction::Deregister)
        );
        assert_eq!(
            TaskState::parse("TASK_STAGING").map(TaskState::action),
            Some(TaskAction::Ignore)
        );
        assert_eq!(TaskState::parse("task_running"), None);
    }
}
