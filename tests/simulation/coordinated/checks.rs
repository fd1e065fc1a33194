//! What must hold in every coordinated history, checked as it happens (after each step of a node,
//! at each read) and at the end of a run. The list is in the module doc of `coordinated/mod.rs`.

use std::collections::HashSet;

use lighthouse::core::version::{Checksum, Version};
use lighthouse::core::{Node, Reply, Request};
use lighthouse::http::{Headers, Method, Response};

use super::Coordinated;
use super::clients::Asker;
use crate::harness::{Sim, SimNode};

impl Coordinated {
    /// What node `i` is and serves now: checked against the history.
    pub(super) fn check_node(&mut self, i: usize) {
        let now = self.h.now_of(i);
        let Some(node) = self.h.nodes[i].node.as_ref() else { return };
        let seed = self.h.seed;
        let status = node.consensus_status(now).expect("coordinated");
        assert!(
            !(node.is_removed() && status.coordinator),
            "seed {seed}: node {i} coordinates term {} though it knows it was removed",
            status.term
        );
        if status.coordinator {
            let known = self.coordinators.entry(status.term).or_insert(status.id.clone());
            assert_eq!(*known, status.id, "seed {seed}: two coordinators in term {}", status.term);
        }
        if node.is_active() {
            let version = node.version();
            let served_max = self.served_max[i];
            assert!(
                version.sequence >= served_max,
                "seed {seed}: node {i} went back to sequence {} after serving {served_max}",
                version.sequence
            );
            self.served_max[i] = version.sequence;
            self.record_committed(version, "a node's store");
        }
        if self.bounds_hold {
            let holders: Vec<usize> = (0..self.h.nodes.len())
                .filter(|&j| {
                    let now = self.h.now_of(j);
                    self.h.nodes[j].node.as_ref().and_then(|n| n.consensus_status(now)).is_some_and(|s| s.lease)
                })
                .collect();
            assert!(
                holders.len() <= 1,
                "seed {seed}: nodes {holders:?} hold a lease at once (real time {})",
                self.h.real
            );
        }
    }

    /// One committed checksum per sequence.
    pub(super) fn record_committed(&mut self, version: Version, what: &str) {
        let seed = self.h.seed;
        let known = *self.committed.entry(version.sequence).or_insert(version.checksum);
        assert_eq!(known, version.checksum, "seed {seed}: two versions at sequence {} ({what})", version.sequence);
    }

    /// A read with `min-version=N` shows every commit answered with a sequence up to N.
    pub(super) fn check_read(&mut self, c: usize, response: &Response) {
        let headers = String::from_utf8_lossy(response.headers.as_slice()).into_owned();
        let header = headers.lines().find_map(|l| l.strip_prefix("X-Lighthouse-Version: ")).expect("a read's version");
        let (sequence, checksum) = header.trim().split_once('-').expect("SEQUENCE-CHECKSUM");
        let version = Version { sequence: sequence.parse().unwrap(), checksum: Checksum::parse_hex(checksum).unwrap() };
        self.record_committed(version, "a read");
        let (seed, min) = (self.h.seed, self.clients[c].min_version);
        assert!(
            version.sequence >= min,
            "seed {seed}: a read with min-version={min} answered sequence {}",
            version.sequence
        );
        let store: serde_json::Value = serde_json::from_slice(response.body.as_slice()).unwrap();
        let counter = store["counter"].as_u64().unwrap_or(0);
        let list: Vec<u64> =
            store["list"].as_array().map(|l| l.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
        for (value, at) in &self.increments {
            assert!(
                *at > version.sequence || counter >= *value,
                "seed {seed}: increment to {value} (sequence {at}) is missing from a read at {version:?}"
            );
        }
        for (id, at) in &self.appends {
            assert!(
                *at > version.sequence || list.contains(id),
                "seed {seed}: append {id} (sequence {at}) is missing from a read at {version:?}"
            );
        }
    }

    /// Every live member is active and serves one version (a removed node that still runs serves
    /// nothing: it is not part of the cluster).
    pub(super) fn converged(&self) -> Option<Version> {
        let live: Vec<&SimNode<Asker>> =
            self.h.nodes.iter().filter(|n| !n.gone && !n.node.as_ref().is_some_and(Node::is_removed)).collect();
        let all_active = live.iter().all(|n| n.node.as_ref().is_some_and(Node::is_active));
        let versions: HashSet<Version> = live.iter().filter_map(|n| Some(n.node.as_ref()?.version())).collect();
        (all_active && versions.len() == 1).then(|| *versions.iter().next().expect("one"))
    }

    /// What each node is, for the message of a run that did not converge.
    pub(super) fn states(&self) -> Vec<String> {
        let real = self.h.real;
        let state = |(i, n): (usize, &SimNode<Asker>)| match &n.node {
            None => format!("n{i}: down{}", if n.gone { " (removed)" } else { "" }),
            Some(node) => {
                let s = node.consensus_status(n.clock.now(real)).expect("coordinated");
                format!(
                    "n{i}: serves {} active {} | term {} coordinator {} lease {} voters {} accepted ({}, {}) in flight {:?}",
                    node.version().sequence,
                    node.is_active(),
                    s.term,
                    s.coordinator,
                    s.lease,
                    s.voters,
                    s.accepted.term,
                    s.accepted.version.sequence,
                    s.in_flight.map(|(v, durable)| (v.map(|v| v.sequence), durable.len()))
                )
            }
        };
        self.h.nodes.iter().enumerate().map(state).collect()
    }

    /// At the end: the store matches its checksum; acknowledged increments wrote distinct values,
    /// all in the final counter; every acknowledged append is in the final list; the final history
    /// contains every version served or read; and a scripted trap caught what it was set for.
    pub(super) fn check_final(&self, version: Version) {
        let seed = self.h.seed;
        let nodes = &self.h.nodes;
        let node = nodes.iter().find_map(|n| n.node.as_ref().filter(|n| !n.is_removed())).expect("a node runs");
        assert_eq!(Checksum::of(node.root()), version.checksum, "seed {seed}: the store matches its checksum");
        let store: serde_json::Value = serde_json::from_slice(&node.root().to_compact()).unwrap();
        let counter = store["counter"].as_u64().unwrap();
        let list: Vec<u64> = store["list"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).collect();
        let mut values: Vec<u64> = self.increments.iter().map(|(v, _)| *v).collect();
        values.sort_unstable();
        let count = values.len();
        values.dedup();
        assert_eq!(values.len(), count, "seed {seed}: two acknowledged increments wrote the same value");
        assert!(
            values.last().is_none_or(|max| counter >= *max),
            "seed {seed}: the final counter {counter} lost increments up to {:?}",
            values.last()
        );
        for (id, at) in &self.appends {
            assert!(
                list.contains(id),
                "seed {seed}: acknowledged append {id} (sequence {at}) is not in the final list"
            );
        }
        for (sequence, checksum) in &self.committed {
            let served = Version { sequence: *sequence, checksum: *checksum };
            let lineage = node.lineage();
            assert!(
                lineage.contains(&served) || !lineage.excludes(&served),
                "seed {seed}: sequence {sequence} ({checksum:?}) was served or read, and the final history has another"
            );
        }
        if let Some(trap) = &self.trap {
            let held = trap.held.expect("the trap was sprung");
            let committed = self.committed.get(&held.version.sequence);
            assert!(
                held.version.sequence > trap.served && committed.is_some_and(|c| *c != held.version.checksum),
                "seed {seed}: the trap did not catch anything: the keeper held {held:?} over sequence {}, committed \
                 {committed:?}",
                trap.served
            );
        }
    }

    /// Every removal answered 200 has left the table of every running member once the cluster
    /// converged (each drops it at its next sync round: a few more rounds are run first).
    pub(super) fn check_tables(&mut self) {
        let removed: Vec<String> = (0..self.h.nodes.len())
            .filter(|&i| self.removed[i])
            .filter_map(|i| self.h.nodes[i].dir.state().map(|s| s.id))
            .collect();
        if removed.is_empty() {
            return;
        }
        let until = self.h.real + 2_000;
        self.run_until(until);
        for i in 0..self.h.nodes.len() {
            let now = self.h.now_of(i);
            let Some(node) = self.h.nodes[i].node.as_mut().filter(|n| !n.is_removed()) else { continue };
            let request = Request {
                method: Method::Get,
                target: "/state",
                headers: Headers::default(),
                body: b"",
                client: None,
                grant: None,
            };
            let Reply::Now(response) = node.handle(now, u64::MAX, &request) else {
                panic!("GET /state answers at once")
            };
            let state: serde_json::Value = serde_json::from_slice(response.body.as_slice()).expect("/state is JSON");
            let table = state["cluster"].as_array().cloned().unwrap_or_default();
            for entry in table {
                let id = entry["id"].as_str().unwrap_or_default();
                assert!(
                    !removed.iter().any(|r| r == id),
                    "seed {}: node {i} still lists the removed node {} ({id}) in its table",
                    self.h.seed,
                    entry["address"]
                );
            }
        }
    }
}
