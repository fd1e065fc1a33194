//! The faults the coordinated mode draws, beside the harness's own (crashes, partitions both ways
//! and one way, pauses, failing disks): joiners, removals by an operator, whole-cluster and
//! rolling restarts, the coordinator crashed or cut off right after it answers a commit, and the
//! scripted trap of a version held by a minority.

use lighthouse::limits::{LEASE_MS, PAUSE_MAX_MS};

use super::{Act, CHAOS_MS, Coordinated};
use crate::disk::{DiskFault, SimDir};
use crate::harness::Event;

/// The trap of a version held by a minority: armed at a time, set by the coordinator's next push,
/// sprung a moment later; what the keeper held when the coordinator died.
#[derive(Debug, Clone, Default)]
pub struct Trap {
    armed: bool,
    /// (coordinator, keeper), once set.
    pub set: Option<(usize, usize)>,
    pub held: Option<lighthouse::core::Accepted>,
    pub served: u64,
}

impl Coordinated {
    pub(super) fn schedule_chaos(&mut self) {
        let rng = &mut self.h.rng;
        let joins = rng.below(3);
        for _ in 0..joins {
            let at = 1_000 + self.h.rng.below(CHAOS_MS - 4_000);
            self.at(at, Act::Join);
            // Sometimes two at once.
            if self.h.rng.chance(300) {
                self.at(at + 1, Act::Join);
            }
        }
        // Removals: none, one, or two (several voters), each of the coordinator or of any node.
        let removals = if self.h.rng.chance(400) { 1 + self.h.rng.below(2) } else { 0 };
        for _ in 0..removals {
            let at = 2_000 + self.h.rng.below(CHAOS_MS - 6_000);
            let coordinator = self.h.rng.chance(400);
            self.at(at, Act::Remove { coordinator });
        }
        // The lifecycle operators go through: joiners restarted, whole-cluster and rolling restarts.
        for _ in 0..joins {
            let at = 3_000 + self.h.rng.below(CHAOS_MS - 4_000);
            self.at(at, Act::CrashJoined);
        }
        if self.h.rng.chance(250) {
            let at = 1_000 + self.h.rng.below(CHAOS_MS - 8_000);
            self.at(at, Act::CrashAll);
        }
        if self.h.rng.chance(250) {
            let at = 1_000 + self.h.rng.below(CHAOS_MS - 10_000);
            self.at(at, Act::RollingRestart);
        }
        self.schedule_network_faults();
    }

    /// Partitions, cut links, pauses, failing disks and crashes, every 0.4 to 2.4 s.
    fn schedule_network_faults(&mut self) {
        let mut t = 0;
        while t < CHAOS_MS {
            let rng = &mut self.h.rng;
            t += 400 + rng.below(2_000);
            if t >= CHAOS_MS {
                break;
            }
            let nodes = self.h.nodes.len() as u64;
            let node = rng.below(nodes) as usize;
            let pause_max = if self.bounds_hold { PAUSE_MAX_MS } else { 2 * LEASE_MS };
            let event = match rng.below(8) {
                0 => Event::Partition,
                1 => Event::OneWay { from: node, to: rng.below(nodes) as usize },
                2 => Event::Pause { node, ms: 1 + rng.below(pause_max) },
                3 => {
                    let fault = if rng.chance(500) { DiskFault::Full } else { DiskFault::ReadOnly };
                    Event::Disk { node, fault: Some(fault) }
                }
                _ => Event::Crash { node },
            };
            self.h.at(t, event);
        }
    }

    /// The nodes that coordinate now.
    fn coordinators_now(&self) -> Vec<usize> {
        (0..self.h.nodes.len())
            .filter(|&i| {
                let now = self.h.now_of(i);
                self.h.nodes[i].node.as_ref().and_then(|n| n.consensus_status(now)).is_some_and(|s| s.coordinator)
            })
            .collect()
    }

    /// Carries out one of the mode's faults.
    pub(super) fn fault(&mut self, act: Act) {
        match act {
            Act::ArmTrap => self.trap.as_mut().expect("scripted").armed = true,
            Act::SpringTrap => self.spring_trap(),
            Act::CrashCoordinator => self.coordinators_now().into_iter().for_each(|i| self.h.crash(i)),
            Act::IsolateCoordinator => self.coordinators_now().into_iter().for_each(|i| self.h.isolate(i)),
            Act::CrashAll => (0..self.h.nodes.len()).for_each(|i| self.h.crash(i)),
            Act::RollingRestart => {
                // One node after another, each given time to come back and catch up.
                for i in 0..self.h.nodes.len() {
                    let at = i as u64 * (1_500 + self.h.rng.below(1_500));
                    self.h.at(at, Event::Crash { node: i });
                }
            }
            Act::CrashJoined => {
                let (nodes, initial) = (self.h.nodes.len(), self.initial);
                if nodes > initial {
                    let i = initial + self.h.rng.below((nodes - initial) as u64) as usize;
                    self.h.crash(i);
                }
            }
            Act::Join => {
                if self.h.nodes.len() < 7 {
                    self.add_node(SimDir::default());
                }
            }
            Act::Remove { coordinator } => self.remove_one(coordinator),
            Act::ClientWake { .. } | Act::RemoveAgain { .. } | Act::Stop { .. } => {
                unreachable!("not a fault: {act:?}")
            }
        }
    }

    /// An operator removes a node by asking any node (the node refuses a removal that would leave
    /// no majority able to commit); it stops the node once answered 200.
    fn remove_one(&mut self, coordinator: bool) {
        let candidates: Vec<usize> = (0..self.h.nodes.len())
            .filter(|&i| !self.h.nodes[i].gone && !self.removed[i])
            .filter(|&i| {
                let now = self.h.now_of(i);
                let status = self.h.nodes[i].node.as_ref().and_then(|n| n.consensus_status(now));
                !coordinator || status.is_some_and(|s| s.coordinator)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let victim = candidates[self.h.rng.below(candidates.len() as u64) as usize];
        self.ask_removal(victim, 20);
    }

    /// The trap, set by the coordinator's first push once armed: that push reaches the keeper
    /// only, and the keeper is cut off from the others (both ways); the coordinator still hears
    /// everyone, so its commit waits for a majority it cannot get.
    pub(super) fn spring_trap_on_push(&mut self, coordinator: usize, keeper: usize) {
        let Some(trap) = self.trap.as_mut().filter(|t| t.armed && t.set.is_none()) else { return };
        trap.set = Some((coordinator, keeper));
        for j in (0..self.h.nodes.len()).filter(|&j| j != coordinator && j != keeper) {
            self.h.blocked.insert((coordinator, j));
            self.h.blocked.insert((keeper, j));
            self.h.blocked.insert((j, keeper));
        }
        self.at(300, Act::SpringTrap);
    }

    /// Notes what the keeper holds, and crashes the coordinator. The others, a majority, elect a
    /// coordinator that never saw the keeper's version and commits others at its sequence; at the
    /// heal the keeper must give up its version for theirs.
    fn spring_trap(&mut self) {
        let trap = self.trap.as_mut().expect("scripted");
        let (coordinator, keeper) = trap.set.expect("set before it is sprung");
        let node = self.h.nodes[keeper].node.as_ref().expect("the keeper runs");
        let now = self.h.nodes[keeper].clock.now(self.h.real);
        trap.held = node.consensus_status(now).map(|s| s.accepted);
        trap.served = node.version().sequence;
        self.h.crash(coordinator);
        // Its disk holds the version too: it stays cut off with the keeper until the heal, so
        // that the majority that elects the next coordinator holds the version nowhere.
        for j in (0..self.h.nodes.len()).filter(|&j| j != coordinator && j != keeper) {
            self.h.blocked.insert((j, coordinator));
        }
    }
}
