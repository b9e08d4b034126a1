//! Several bridges under `--ha` against one [`SimMarathon`] and one [`SimConsul`], through a
//! virtual network with seeded delays, partitions (an instance cut off from the main Consul
//! endpoint, while the agents still answer it) and crashes:
//! the world of the "never two writers" property. A request reaches its server after a delay of
//! its own (shorter than the request timeout, as the driver contract bounds it) and its answer
//! comes back after another; a blocking read of a key is parked at the server until the key
//! changes or its wait ends. Every write that reaches Consul is recorded with the instance whose
//! session held the leader key at that moment.
//!
//! Not here: the single-bridge world and its ownership checks ([`crate::SimWorld`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use consular_core::io::{Method, Output, Request, Response, Target, TransportError};
use consular_core::{Bridge, Config, HaConfig, Role};

use crate::consul::SimConsul;
use crate::marathon::SimMarathon;
use crate::world::{agent_address, consul_agent_of, serve_consul, serve_marathon};

/// Steps after which a run declares a livelock.
const STEP_BOUND: usize = 2_000_000;
/// How often a parked blocking read looks at its key again.
const PARK_RECHECK: Duration = Duration::from_millis(100);

/// One write Consul applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWrite {
    /// When Consul applied it.
    pub at: Duration,
    /// The instance that sent it.
    pub instance: usize,
    /// The instance whose session held the leader key then, if any.
    pub leader: Option<usize>,
    /// Method and path.
    pub what: String,
}

#[derive(Debug)]
enum Event {
    /// `request` of `instance` (in its incarnation `life`) reaches its server.
    Arrive {
        instance: usize,
        life: u64,
        request: Request,
        parked_until: Option<Duration>,
    },
    /// Its answer reaches the instance.
    Answer {
        instance: usize,
        life: u64,
        request: Request,
        result: Result<Response, TransportError>,
    },
}

/// The instances, Marathon, Consul and the network between them.
#[derive(Debug)]
pub struct SimCluster {
    /// Marathon.
    pub marathon: SimMarathon,
    /// Consul; its clock follows the cluster's.
    pub consul: SimConsul,
    config: Config,
    instances: Vec<Option<Bridge>>,
    /// Incarnations: answers for an instance that crashed since are lost.
    lives: Vec<u64>,
    cut_off: BTreeSet<usize>,
    now: Duration,
    rng: u64,
    max_delay: Duration,
    events: BTreeMap<(Duration, u64), Event>,
    sequence: u64,
    /// Every write Consul applied, in order.
    pub writes: Vec<AppliedWrite>,
}

impl SimCluster {
    /// `instances` bridges of `config` (its `ha` set per instance, `i0` …), Consul with `agents`
    /// client agents, and one-way delays up to `max_delay`.
    pub fn new(
        config: Config,
        marathon: SimMarathon,
        instances: usize,
        agents: usize,
        max_delay: Duration,
        seed: u64,
    ) -> Self {
        let mut consul = SimConsul::new();
        for i in 1..=agents.max(1) {
            consul.add_agent(&alloc::format!("node-{i}"), &agent_address(i));
        }
        let mut cluster = SimCluster {
            marathon,
            consul,
            config,
            instances: Vec::new(),
            lives: Vec::new(),
            cut_off: BTreeSet::new(),
            now: Duration::ZERO,
            rng: seed | 1,
            max_delay,
            events: BTreeMap::new(),
            sequence: 0,
            writes: Vec::new(),
        };
        for i in 0..instances {
            cluster.instances.push(None);
            cluster.lives.push(0);
            cluster.start(i);
        }
        cluster
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Instance `i`'s config.
    fn config_of(&self, i: usize) -> Config {
        let mut ha = HaConfig::new(&self.config.registration_id, &alloc::format!("i{i}"));
        if let Some(given) = &self.config.ha {
            ha.ttl = given.ttl;
            ha.lock_delay = given.lock_delay;
        }
        Config {
            ha: Some(ha),
            ..self.config.clone()
        }
    }

    /// Starts instance `i` afresh (after a crash), or does nothing if it runs.
    pub fn start(&mut self, i: usize) {
        if self.instances.get(i).is_some_and(Option::is_none) {
            self.lives[i] += 1;
            self.instances[i] = Some(Bridge::new(self.config_of(i), self.now));
            self.drain(i);
        }
    }

    /// Instance `i` dies: no goodbye, its requests in flight still reach their servers.
    pub fn crash(&mut self, i: usize) {
        if let Some(slot) = self.instances.get_mut(i) {
            *slot = None;
        }
    }

    /// Cuts instance `i` off from the main Consul endpoint (sessions, the lock, KV), or heals
    /// it; the agents still answer it.
    pub fn set_cut_off(&mut self, i: usize, cut: bool) {
        if cut {
            self.cut_off.insert(i);
        } else {
            self.cut_off.remove(&i);
        }
    }

    /// The instances that lead now, by their own account.
    pub fn leaders(&self) -> Vec<usize> {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, b)| b.as_ref().is_some_and(|b| b.role() == Role::Leader))
            .map(|(i, _)| i)
            .collect()
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..STEP_BOUND {
            if !self.step(end) {
                return;
            }
        }
        panic!("no progress after {STEP_BOUND} steps: livelock");
    }

    fn random_delay(&mut self) -> Duration {
        // xorshift64: deterministic per seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let max = self.max_delay.as_micros().max(1) as u64;
        Duration::from_micros(self.rng % max)
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        self.sequence += 1;
        self.events.insert((at, self.sequence), event);
    }

    fn wake_of(&mut self, i: usize) -> Option<Duration> {
        match self.instances[i].as_mut()?.poll_output() {
            Output::Timeout(at) => at,
            other => unreachable!("outputs are drained after every input, found {other:?}"),
        }
    }

    /// Takes the earliest event or wake-up up to `limit`; false if there is none.
    fn step(&mut self, limit: Duration) -> bool {
        let next_event = self.events.keys().next().map(|&(at, _)| at);
        let wakes: Vec<(Duration, usize)> = (0..self.instances.len())
            .filter_map(|i| self.wake_of(i).map(|at| (at, i)))
            .collect();
        let next_wake = wakes.iter().min().copied();
        let at = [next_event, next_wake.map(|(at, _)| at)]
            .into_iter()
            .flatten()
            .min()
            .filter(|&at| at <= limit);
        let Some(at) = at else {
            self.now = self.now.max(limit);
            self.consul.set_time(self.now);
            return false;
        };
        self.now = self.now.max(at);
        self.consul.set_time(self.now);
        if next_event == Some(at) {
            let (_, event) = self.events.pop_first().expect("an event is due");
            self.handle(event);
        } else if let Some((_, i)) = next_wake {
            if let Some(bridge) = self.instances[i].as_mut() {
                bridge.handle_timeout(self.now);
            }
            self.drain(i);
        }
        true
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive {
                instance,
                life,
                request,
                parked_until,
            } => {
                let to_consul = request.target != Target::Marathon;
                // Cut off from the main Consul only: the agents still take its registrations,
                // which is when only the lease keeps a deposed leader from writing.
                if request.target == Target::Consul && self.cut_off.contains(&instance) {
                    let back = self.now + self.random_delay();
                    let result = Err(TransportError::Connect(String::from("cut off")));
                    return self.schedule(
                        back,
                        Event::Answer {
                            instance,
                            life,
                            request,
                            result,
                        },
                    );
                }
                if to_consul && request.method == Method::Get {
                    if let Some(wait) = self.consul.kv_blocks(&request.path_and_query) {
                        let until = parked_until.unwrap_or(self.now + wait);
                        if self.now < until {
                            let again = (self.now + PARK_RECHECK).min(until);
                            let parked_until = Some(until);
                            let event = Event::Arrive {
                                instance,
                                life,
                                request,
                                parked_until,
                            };
                            return self.schedule(again, event);
                        }
                    }
                }
                let result = self.serve(instance, &request);
                let back = self.now + self.random_delay();
                self.schedule(
                    back,
                    Event::Answer {
                        instance,
                        life,
                        request,
                        result,
                    },
                );
            }
            Event::Answer {
                instance,
                life,
                request,
                result,
            } => {
                if self.lives[instance] != life {
                    return;
                }
                if let Some(bridge) = self.instances[instance].as_mut() {
                    bridge.handle_response(self.now, request.id, result);
                }
                self.drain(instance);
            }
        }
    }

    fn drain(&mut self, i: usize) {
        for _ in 0..STEP_BOUND {
            let Some(bridge) = self.instances[i].as_mut() else {
                return;
            };
            match bridge.poll_output() {
                Output::Timeout(_) => return,
                Output::Request(request) => {
                    let at = self.now + self.random_delay();
                    let life = self.lives[i];
                    let event = Event::Arrive {
                        instance: i,
                        life,
                        request,
                        parked_until: None,
                    };
                    self.schedule(at, event);
                }
                // No callbacks, no stream: this world's instances learn Marathon by syncing.
                Output::Reply(..)
                | Output::OpenStream(_)
                | Output::CloseStream(_)
                | Output::Log(_) => {}
            }
        }
        panic!("an instance produced outputs without end");
    }

    /// Applies `request` at its server; a write to Consul is recorded with the leader of now.
    fn serve(&mut self, instance: usize, request: &Request) -> Result<Response, TransportError> {
        let Some(agent) = consul_agent_of(&request.target) else {
            return Ok(serve_marathon(&mut self.marathon, request));
        };
        if !self.consul.is_up(&agent) {
            return Err(TransportError::Connect(alloc::format!(
                "no agent on {agent}"
            )));
        }
        if is_leader_write(request) {
            let leader = self.leader_by_key();
            self.writes.push(AppliedWrite {
                at: self.now,
                instance,
                leader,
                what: alloc::format!("{} {}", request.method, request.path_and_query),
            });
        }
        Ok(serve_consul(&mut self.consul, &agent, request))
    }

    /// The instance whose session holds the leader key, from its session's name.
    fn leader_by_key(&self) -> Option<usize> {
        let key = self.config_of(0).ha?.key;
        let session = self.consul.kv_entry(&key)?.session?;
        let name = self.consul.session(&session)?.name;
        // "consular i<n> leader"
        name.strip_prefix("consular i")?
            .strip_suffix(" leader")?
            .parse()
            .ok()
    }

    /// The running tasks' ids in Marathon, and the ids of our services in Consul.
    pub fn tasks_and_services(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let tasks = self
            .marathon
            .running_tasks()
            .into_iter()
            .map(|(_, task)| task.id.clone())
            .collect();
        let tag = alloc::format!("consular-reg-id={}", self.config.registration_id);
        let services = self
            .consul
            .all_services()
            .into_iter()
            .filter(|(_, s)| s.tags.contains(&tag))
            .map(|(_, s)| s.id)
            .collect();
        (tasks, services)
    }
}

/// True for what only a leader may write: everything sent to Consul but the instance's own
/// session, lock and status requests.
fn is_leader_write(request: &Request) -> bool {
    let path = request.path_and_query.as_str();
    request.method != Method::Get
        && !path.starts_with("/v1/session/")
        && !path.contains("?acquire=")
        && !path.contains("?release=")
}
