//! The `world_ops` harness: the simulated [`SimWorld`](consular_sim::SimWorld) (bridge,
//! SimMarathon, SimConsul, seeded network) driven by a scenario decoded from fuzz bytes — the op
//! set and convergence check of `consular_sim::scenario`, shared with the quickcheck
//! properties. libFuzzer's coverage guidance reaches corners quickcheck's uniform generation
//! rarely does.
//!
//! Checked (by `check_converged`): no ownership violation at any step (foreign services
//! deregistered, keys touched outside `consular/`, second replies, refused callbacks); and once the
//! world heals and two sync intervals pass, Consul holds exactly Marathon's running tasks and
//! labels, every foreign service and key is still there, every callback was answered, and
//! in-flight requests never passed the limit.

use consular_sim::scenario::{check_converged, run as play, Op, Scenario};

use crate::choices::Choices;

/// Ops decoded from one input at most: each may run up to 15 s of virtual time.
const MAX_OPS: usize = 64;

/// Decodes `bytes` (Marathon version, event source, seed, then ops), plays them, and checks.
pub fn run(bytes: &[u8]) {
    let mut c = Choices::new(bytes);
    let (Some(version), Some(stream), Some(seed)) = (c.below(4), c.bool(), c.u64()) else {
        return;
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match decode_op(&mut c) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    let scenario = Scenario {
        ops,
        version: version as u8,
        stream,
        seed,
    };
    let (world, foreign) = play(&scenario);
    if let Err(e) = check_converged(&world, &foreign) {
        panic!("{e}");
    }
}

fn decode_op(c: &mut Choices) -> Option<Op> {
    let small = |c: &mut Choices| c.u8().map(|n| n % 8);
    Some(match c.below(20)? {
        0..=2 => Op::PutApp {
            app: small(c)?,
            labels: (0..small(c)? % 4)
                .map(|_| Some((small(c)?, small(c)?)))
                .collect::<Option<_>>()?,
        },
        3 => Op::RemoveApp { app: small(c)? },
        4..=7 => Op::StartTask {
            app: small(c)?,
            agent: small(c)?,
            ports: (0..small(c)? % 3)
                .map(|_| c.below(1000).map(|p| 31000 + p as u16))
                .collect::<Option<_>>()?,
        },
        8..=11 => Op::ChangeTask {
            pick: c.u8()?,
            state: c.u8()?,
        },
        12 => Op::AgentDown { agent: small(c)? },
        13 => Op::AgentUp { agent: small(c)? },
        14 => Op::MarathonDown,
        15 => Op::MarathonUp,
        16 => Op::ForeignService {
            agent: small(c)?,
            n: small(c)?,
        },
        17 => Op::ForeignKey { n: small(c)? },
        18 => Op::Orphan {
            agent: small(c)?,
            n: small(c)?,
        },
        _ => Op::Run {
            ms: c.u16()? % 15_000,
        },
    })
}
