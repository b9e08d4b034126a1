//! The "never two writers" property of `--ha` (quickcheck), in a simulated cluster of three
//! instances ([`consular_sim::SimCluster`]): whatever the schedule of crashes, partitions from
//! Consul and network delays (each under the request timeout, as drivers bound them), every write
//! Consul applies comes from the instance whose session holds the leader key at that moment; and
//! once the world heals, exactly one instance leads and Consul holds exactly Marathon's running
//! tasks.

use std::time::Duration;

use consular_core::{Config, EventSource, HaConfig};
use consular_sim::world::agent_address;
use consular_sim::{MarathonVersion, SimCluster, SimMarathon};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const INSTANCES: usize = 3;
const AGENTS: usize = 2;

#[derive(Clone, Debug)]
enum HaOp {
    StartTask { agent: u8 },
    KillTask { pick: u8 },
    Crash { instance: u8 },
    Restart { instance: u8 },
    CutOff { instance: u8 },
    Heal { instance: u8 },
    Run { ms: u16 },
}

#[derive(Clone, Debug)]
struct Schedule {
    ops: Vec<HaOp>,
    seed: u64,
    max_delay_ms: u16,
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Self {
        let op = |g: &mut Gen| {
            let instance = u8::arbitrary(g) % INSTANCES as u8;
            match u8::arbitrary(g) % 10 {
                0 | 1 => HaOp::StartTask {
                    agent: u8::arbitrary(g),
                },
                2 => HaOp::KillTask {
                    pick: u8::arbitrary(g),
                },
                3 => HaOp::Crash { instance },
                4 => HaOp::Restart { instance },
                5 => HaOp::CutOff { instance },
                6 => HaOp::Heal { instance },
                _ => HaOp::Run {
                    ms: u16::arbitrary(g) % 30_000,
                },
            }
        };
        Schedule {
            ops: (0..usize::arbitrary(g) % 24).map(|_| op(g)).collect(),
            seed: u64::arbitrary(g),
            // One way; the request timeout is 2 s.
            max_delay_ms: 1 + u16::arbitrary(g) % 1_500,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // One op fewer at a time.
        let this = self.clone();
        Box::new((0..self.ops.len()).rev().map(move |i| {
            let mut shorter = this.clone();
            shorter.ops.remove(i);
            shorter
        }))
    }
}

fn cluster(s: &Schedule) -> SimCluster {
    let mut ha = HaConfig::new("ha", "unused");
    ha.ttl = Duration::from_secs(10);
    let config = Config {
        registration_id: "ha".into(),
        sync_interval: Duration::from_secs(3),
        purge: true,
        request_timeout: Duration::from_secs(2),
        events: EventSource::Callback,
        callback_url: None,
        ha: Some(ha),
        ..Config::default()
    };
    let mut marathon = SimMarathon::new(MarathonVersion::V1_10);
    marathon.put_app("/web", &[]);
    let max_delay = Duration::from_millis(u64::from(s.max_delay_ms));
    SimCluster::new(config, marathon, INSTANCES, AGENTS, max_delay, s.seed)
}

fn play(s: &Schedule) -> SimCluster {
    let mut c = cluster(s);
    let mut port = 31_000;
    for op in &s.ops {
        match *op {
            HaOp::StartTask { agent } => {
                let host = agent_address(1 + usize::from(agent) % AGENTS);
                port += 1;
                let id = c.marathon.start_task("/web", &host, &[port]);
                c.marathon.set_task_state(&id, "TASK_RUNNING");
            }
            HaOp::KillTask { pick } => {
                let running: Vec<String> = c
                    .marathon
                    .running_tasks()
                    .into_iter()
                    .map(|(_, t)| t.id.clone())
                    .collect();
                if !running.is_empty() {
                    let id = &running[usize::from(pick) % running.len()];
                    c.marathon.set_task_state(id, "TASK_KILLED");
                }
            }
            HaOp::Crash { instance } => c.crash(usize::from(instance)),
            HaOp::Restart { instance } => c.start(usize::from(instance)),
            HaOp::CutOff { instance } => c.set_cut_off(usize::from(instance), true),
            HaOp::Heal { instance } => c.set_cut_off(usize::from(instance), false),
            HaOp::Run { ms } => c.run_for(Duration::from_millis(u64::from(ms))),
        }
        c.marathon.take_events();
        c.run_for(Duration::from_millis(200));
    }
    // The world heals: everyone up and connected, then time for a session to expire, a lock
    // delay and two syncs.
    for i in 0..INSTANCES {
        c.set_cut_off(i, false);
        c.start(i);
    }
    c.run_for(Duration::from_secs(40));
    c
}

fn never_two_writers(s: Schedule) -> TestResult {
    let c = play(&s);
    if let Some(w) = c.writes.iter().find(|w| w.leader != Some(w.instance)) {
        return TestResult::error(format!(
            "at {:?} instance {} wrote {} while the key was held by {:?}",
            w.at, w.instance, w.what, w.leader
        ));
    }
    let leaders = c.leaders();
    if leaders.len() != 1 {
        return TestResult::error(format!("after healing, leaders: {leaders:?}"));
    }
    let (tasks, services) = c.tasks_and_services();
    if tasks != services {
        return TestResult::error(format!(
            "after healing, running tasks {tasks:?} but our services {services:?}"
        ));
    }
    TestResult::passed()
}

#[test]
fn no_two_instances_write_at_once_and_consul_converges_once_healed() {
    QuickCheck::new()
        .tests(60)
        .quickcheck(never_two_writers as fn(Schedule) -> TestResult);
}

#[test]
fn a_partitioned_leader_is_replaced_and_its_writes_stop_first() {
    // The scripted case of the property: the leader is cut off while tasks change.
    let s = Schedule {
        ops: vec![
            HaOp::Run { ms: 5_000 },
            HaOp::StartTask { agent: 0 },
            HaOp::Run { ms: 5_000 },
            HaOp::CutOff { instance: 0 },
            HaOp::CutOff { instance: 1 },
            HaOp::StartTask { agent: 1 },
            HaOp::Run { ms: 25_000 },
        ],
        seed: 7,
        max_delay_ms: 900,
    };
    let c = play(&s);
    assert!(c.writes.iter().all(|w| w.leader == Some(w.instance)));
    let writers: std::collections::BTreeSet<usize> = c.writes.iter().map(|w| w.instance).collect();
    assert!(!writers.is_empty());
    assert_eq!(c.leaders().len(), 1);
    let (tasks, services) = c.tasks_and_services();
    assert_eq!(tasks, services);
}
