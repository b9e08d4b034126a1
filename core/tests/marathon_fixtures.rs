//! Every payload in Marathon's own fixtures (`core/tests/fixtures/marathon/`) goes through the
//! parser the bridge uses for it, and parses — or, for payloads the bridge never reads as that
//! kind, is rejected with a clear error. A fixture the table below does not know fails the test,
//! so a new Marathon shape cannot slip in untested.

mod support;

use support::fixtures::{fixture, fixtures_dir};

use std::collections::BTreeSet;

use consular_core::marathon::{
    parse_app_definition, parse_apps, parse_event, parse_tasks, App, MarathonEvent, SseParser,
    Task, TaskState,
};

fn read(name: &str) -> Vec<u8> {
    fixture(name)
}

/// Events the bridge acts on, and what they must parse to.
fn check_status_updates() {
    let cases = [
        (
            "status_update_event.json",
            "my-app_0-1396592784349",
            TaskState::Running,
            vec![31372],
        ),
        (
            "status_update_event_task_running_stream_sample.json",
            "",
            TaskState::Running,
            vec![],
        ),
        (
            "status_update_event_task_failed_stream_sample.json",
            "foo.0664256e-6771-11e5-94e1-be5b2935a987",
            TaskState::Failed,
            vec![31776],
        ),
        (
            "status_update_event_with_ip_addresses.constructed.json",
            "",
            TaskState::Running,
            vec![31372],
        ),
    ];
    for (name, task_id, state, ports) in cases {
        match parse_event(&read(name)) {
            Ok(MarathonEvent::StatusUpdate(u)) => {
                assert_eq!(u.state, state, "{name}");
                if !task_id.is_empty() {
                    assert_eq!(u.task_id, task_id, "{name}");
                }
                if !ports.is_empty() {
                    assert_eq!(u.ports, ports, "{name}");
                }
                assert!(u.app_id.is_some() && !u.host.is_empty(), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        parse_event(&read("app_terminated_event.json")),
        Ok(MarathonEvent::AppTerminated {
            app_id: "/my-app".into()
        })
    );
}

#[test]
fn every_fixture_is_parsed_by_the_parser_the_bridge_uses_for_it() {
    // Events the bridge receives but does not act on: recognised, acknowledged, never rejected.
    let other_events = [
        "add_health_check_event.json",
        "api_post_event.json",
        "deployment_failed.json",
        "deployment_info.json",
        "deployment_info_v1.3_heavy.json",
        "deployment_step_failure.json",
        "deployment_step_success.json",
        "deployment_step_success_v1.3_heavy.json",
        "deployment_success.json",
        "event_stream_attached.json",
        "event_stream_detached.constructed.json",
        "failed_health_check_event.json",
        "failed_health_check_event_v1.3.json",
        "framework_message_event.json",
        "group_change_failed.json",
        "group_change_success.json",
        "group_change_success_stream_sample_v1.1.json",
        "instance_changed_event.json",
        "pod_created_event.json",
        "pod_deleted_event.json",
        "pod_updated_event.json",
        "remove_health_check_event.json",
        "subscribe_event.json",
        "unhealthy_instance_kill_event.json",
        "unhealthy_task_kill_event.json",
        "unknown_instance_terminated_event.json",
        "unsubscribe_event.json",
    ];
    // Health events: the app and the instance (the task, up to Marathon 1.3) they name.
    let health_events = [
        (
            "health_status_changed_event.json",
            "/my-app",
            "my-app.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c",
        ),
        (
            "health_status_changed_event_v1.3.json",
            "/my-app",
            "my-app_0-1396592784349",
        ),
        (
            "instance_health_changed_event.json",
            "/app-id",
            "my-app.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c",
        ),
        (
            "instance_health_changed_event_changelog_v1.4.json",
            "/some/app",
            "some_app.marathon-49d976d3-9c6f-11e6-93cb-0242216b9f0d",
        ),
    ];
    for (name, app_id, instance_id) in health_events {
        assert_eq!(
            parse_event(&read(name)),
            Ok(MarathonEvent::HealthChanged {
                app_id: app_id.into(),
                instance_id: instance_id.into()
            }),
            "{name}"
        );
    }
    for name in other_events {
        assert!(
            matches!(parse_event(&read(name)), Ok(MarathonEvent::Other(_))),
            "{name}"
        );
    }
    check_status_updates();

    // App listings, across versions: tasks embedded or not, `ports` or `portDefinitions`.
    let apps = parse_apps(&read("apps_list.json")).expect("apps_list.json");
    assert_eq!(apps[0].id, "/myapp");
    let apps = parse_apps(&read("apps_list_v1.1.json")).expect("apps_list_v1.1.json");
    assert!(!apps.is_empty() && apps.iter().all(|a| a.id.starts_with('/')));
    let app = parse_app_definition(&read("app_show_embed_tasks_v1.1.json"))
        .expect("app_show_embed_tasks_v1.1.json");
    assert_eq!(app.id, "/toggle");
    assert_eq!(app.version.as_deref(), Some("2014-09-12T23:28:21.737Z"));
    let definition: App =
        serde_json::from_slice(&read("app_definition.json")).expect("app_definition.json");
    assert!(definition.tasks.is_none(), "an app definition has no tasks");

    // Task listings: 1.9+ with `state`, 1.1 without, 1.4 doc sample, and the 1.10 task object.
    for name in [
        "app_tasks.json",
        "app_tasks_v1.1.json",
        "tasks.json",
        "tasks_v1.4_doc.json",
    ] {
        let tasks = parse_tasks(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !tasks.is_empty() && tasks.iter().all(|t| !t.id.is_empty() && !t.host.is_empty()),
            "{name}"
        );
    }
    let tasks = parse_tasks(&read("app_tasks_v1.1.json")).expect("app_tasks_v1.1.json");
    assert!(
        tasks.iter().all(|t| t.state.is_none() && t.is_running()),
        "1.1: no `state`, started means running"
    );
    let task: Task =
        serde_json::from_slice(&read("task_with_ip_addresses_v1.10_test.json")).unwrap();
    assert_eq!(task.state.as_deref(), Some("TASK_STAGING"));
    assert!(!task.is_running());

    // Stream samples, through the framing parser into events.
    for name in [
        "events_stream_sample.txt",
        "events_stream_sample_v1.1_doc.txt",
    ] {
        let mut events = Vec::new();
        SseParser::new(1 << 20).push(&read(name), &mut events);
        assert!(!events.is_empty(), "{name}");
        for event in events {
            assert!(
                parse_event(event.data.as_bytes()).is_ok(),
                "{name}: {}",
                event.data
            );
        }
    }

    // Payloads the bridge reads only as errors or not at all: each parser it might meet them
    // through rejects them with a message naming what is missing.
    let not_listings = [
        "app_404_not_found.json",
        "deployment_result.json",
        "deployments.json",
        "event_subscriptions_list_v1.1.json",
        "event_subscriptions_subscribe_v1.1.json",
        "event_subscriptions_unsubscribe_v1.1.json",
        "info.json",
        "info_legacy_doc.json",
        "leader.json",
        "leader_404_no_leader.json",
    ];
    for name in not_listings {
        let error = parse_apps(&read(name)).expect_err(name).to_string();
        assert!(error.starts_with("unreadable answer"), "{name}: {error}");
        assert!(
            parse_event(&read(name)).is_err() || name.starts_with("event_subscriptions"),
            "{name}"
        );
    }

    let known: BTreeSet<&str> = other_events
        .iter()
        .chain(&not_listings)
        .copied()
        .chain(health_events.iter().map(|(name, _, _)| *name))
        .chain([
            "README.md",
            "status_update_event.json",
            "status_update_event_task_running_stream_sample.json",
            "status_update_event_task_failed_stream_sample.json",
            "status_update_event_with_ip_addresses.constructed.json",
            "app_terminated_event.json",
            "apps_list.json",
            "apps_list_v1.1.json",
            "app_show_embed_tasks_v1.1.json",
            "app_definition.json",
            "app_tasks.json",
            "app_tasks_v1.1.json",
            "tasks.json",
            "tasks_v1.4_doc.json",
            "task_with_ip_addresses_v1.10_test.json",
            "events_stream_sample.txt",
            "events_stream_sample_v1.1_doc.txt",
        ])
        .collect();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            known.contains(name.as_str()),
            "fixture {name} is not covered by this test"
        );
    }
}
