//! Model-based properties of the whole bridge in a simulated world (quickcheck): whatever happens
//! — apps come and go, tasks change to any state, agents go down, foreign services and keys sit
//! beside ours — once the world heals and a sync with purge runs, Consul holds exactly the running
//! tasks of existing apps and their labels; a further sync writes nothing; nothing foreign is ever
//! touched; every callback gets one reply; in-flight requests stay bounded; runs replay exactly.
//! The scenario model lives in `consular_sim::scenario`; this file generates scenarios.

use consular_sim::scenario::{check_converged, run, Op, Scenario, INTERVAL};
use consular_sim::world::transcript;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// A quickcheck-generated scenario.
#[derive(Clone, Debug)]
struct Generated(Scenario);

fn op(g: &mut Gen) -> Op {
    let small = |g: &mut Gen| u8::arbitrary(g) % 8;
    match u8::arbitrary(g) % 20 {
        0..=2 => Op::PutApp {
            app: small(g),
            labels: (0..small(g) % 4).map(|_| (small(g), small(g))).collect(),
        },
        3 => Op::RemoveApp { app: small(g) },
        4..=7 => Op::StartTask {
            app: small(g),
            agent: small(g),
            ports: (0..small(g) % 3)
                .map(|_| 31000 + u16::arbitrary(g) % 1000)
                .collect(),
        },
        8..=11 => Op::ChangeTask {
            pick: u8::arbitrary(g),
            state: u8::arbitrary(g),
        },
        12 => Op::AgentDown { agent: small(g) },
        13 => Op::AgentUp { agent: small(g) },
        14 => Op::MarathonDown,
        15 => Op::MarathonUp,
        16 => Op::ForeignService {
            agent: small(g),
            n: small(g),
        },
        17 => Op::ForeignKey { n: small(g) },
        18 => Op::Orphan {
            agent: small(g),
            n: small(g),
        },
        _ => Op::Run {
            ms: u16::arbitrary(g) % 15_000,
        },
    }
}

impl Arbitrary for Generated {
    fn arbitrary(g: &mut Gen) -> Self {
        let ops = (0..usize::arbitrary(g) % g.size()).map(|_| op(g)).collect();
        Generated(Scenario {
            ops,
            version: u8::arbitrary(g),
            stream: bool::arbitrary(g),
            seed: u64::arbitrary(g),
        })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let this = self.0.clone();
        let shorter = (0..this.ops.len()).rev().map(move |cut| {
            let mut ops = this.ops.clone();
            ops.remove(cut);
            Generated(Scenario {
                ops,
                ..this.clone()
            })
        });
        Box::new(shorter)
    }
}

fn converges(s: Generated) -> TestResult {
    let (w, foreign) = run(&s.0);
    match check_converged(&w, &foreign) {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

fn warm_sync_writes_nothing(s: Generated) -> TestResult {
    let (mut w, _) = run(&s.0);
    let writes = w.consul.counts().writes;
    w.run_for(INTERVAL * 2);
    w.settle();
    match w.consul.counts().writes - writes {
        0 => TestResult::passed(),
        extra => TestResult::error(format!("{extra} writes in a sync with nothing to change")),
    }
}

fn replays_exactly(s: Generated) -> bool {
    transcript(&run(&s.0).0) == transcript(&run(&s.0).0)
}

// 100 cases each; QUICKCHECK_TESTS=N runs more.

#[test]
fn after_healing_consul_holds_exactly_marathons_running_tasks_and_labels() {
    QuickCheck::new().quickcheck(converges as fn(Generated) -> TestResult);
}

#[test]
fn a_sync_with_nothing_to_change_writes_nothing() {
    QuickCheck::new().quickcheck(warm_sync_writes_nothing as fn(Generated) -> TestResult);
}

#[test]
fn runs_are_deterministic() {
    QuickCheck::new()
        .tests(30)
        .quickcheck(replays_exactly as fn(Generated) -> bool);
}
