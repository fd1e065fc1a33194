//! A cluster member for multi-node tests: a node behind a TCP proxy that it advertises, so a test
//! can cut and heal its links, kill it and start it again on the same data directory.

use super::proxy::Proxy;
use super::{Server, TempDir};

/// One node: its proxy, its data directory, and the running process (if it runs).
pub struct Member {
    pub proxy: Proxy,
    pub dir: TempDir,
    pub server: Option<Server>,
}

impl Member {
    pub fn new(name: &str) -> Member {
        Member { proxy: Proxy::new(), dir: TempDir::new(name), server: None }
    }

    /// The address peers know it by.
    pub fn address(&self) -> String {
        self.proxy.addr.to_string()
    }

    pub fn start(&mut self, args: &[&str]) {
        let mut all = vec![self.dir.flag(), format!("--advertise={}", self.address())];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let server = Server::start(&all);
        self.proxy.forward_to(server.addr);
        self.server = Some(server);
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("the member runs")
    }

    pub fn kill9(&mut self) {
        self.server.take().expect("the member runs").kill9();
    }

    /// The addresses in its `/state` table.
    pub fn peers(&self) -> Vec<String> {
        let state = self.server().get("/state").json();
        let mut peers: Vec<String> =
            state["cluster"].as_array().unwrap().iter().map(|p| p["address"].as_str().unwrap().to_string()).collect();
        peers.sort();
        peers
    }

    pub fn version(&self) -> serde_json::Value {
        self.server().get("/version").json()
    }

    /// What `/state` says of coordinated writes: `coordinator`, `term`, `voters`, `role`...
    pub fn writes(&self) -> serde_json::Value {
        self.server().get("/state").json()["writes"].clone()
    }
}

/// Starts `count` members, each with the one before it as its seed (so gossip has work to do),
/// with `args` besides.
pub fn chain(count: usize, name: &str, args: &[&str]) -> Vec<Member> {
    let mut members: Vec<Member> = (0..count).map(|i| Member::new(&format!("{name}{i}"))).collect();
    for i in 0..count {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if i > 0 {
            all.push(format!("--seeds={}", members[i - 1].address()));
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        members[i].start(&all);
    }
    wait_settled(&members);
    members
}

/// Waits until every member serves, and, with coordinated writes, all of them are voters, agree
/// on the coordinator and serve the same version, and none holds a newer one still being
/// committed (the promotions are done).
pub fn wait_settled(members: &[Member]) {
    super::wait_for("every node to catch up and serve", || {
        members.iter().all(|m| m.server().get("/").json()["active"] == true)
    });
    if members[0].writes()["writes"] != "coordinated" {
        return;
    }
    super::wait_for("every node to be a voter and to know the coordinator", || {
        let states: Vec<serde_json::Value> = members.iter().map(Member::writes).collect();
        let coordinator = &states[0]["coordinator"];
        let versions: Vec<serde_json::Value> = members.iter().map(Member::version).collect();
        !coordinator.is_null()
            && states.iter().all(|s| {
                s["coordinator"] == *coordinator && s["voters"].as_array().map(Vec::len) == Some(members.len())
            })
            && versions.iter().all(|v| *v == versions[0])
            && states.iter().all(|s| s["accepted"]["sequence"] == versions[0]["sequence"])
    });
}
