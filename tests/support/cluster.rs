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
}
