//! What a node keeps on disk beside its snapshots (`node.json`): its random id and the id of the
//! cluster it belongs to, both written before the node first speaks to a peer, so that a restarted
//! node is the same node of the same cluster; and, with coordinated writes, the newest term it
//! knows and whom it voted for in that term. A vote is written (and fsync'd) before it is
//! answered, so a node never votes twice in a term, across restarts too.
//!
//! It also holds the newest version the node knows was committed (its commit point), written in
//! the background after the node learns of a commit: a follower's snapshot files hold versions it
//! accepted before they were committed, so without it a node restarted while a majority is down
//! would not know which of its versions it may serve (`core::commit_point`).

use crate::core::consensus::Accepted;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub id: String,
    pub term: u64,
    /// The candidate voted for in `term`.
    pub vote: Option<String>,
    /// The cluster this node belongs to (`None`: it has yet to hear of one; it joins the
    /// cluster of the first peer that answers).
    pub cluster: Option<String>,
    /// The newest version this node knows was committed (`None` in a file from before it was
    /// kept, or before the node learned of any commit).
    pub committed: Option<Accepted>,
}

impl NodeState {
    /// A new node: no term, no vote, no cluster yet.
    pub fn new(id: String) -> NodeState {
        NodeState { id, term: 0, vote: None, cluster: None, committed: None }
    }

    /// `{"cluster":"..."|null,"id":"...","term":T,"vote":"..."|null}` (and
    /// `"committed":{"term","sequence","checksum"}` once a commit is known) with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut json =
            serde_json::json!({"cluster": self.cluster, "id": self.id, "term": self.term, "vote": self.vote});
        if let Some(committed) = &self.committed {
            json["committed"] = committed.to_json();
        }
        let mut bytes = json.to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    }

    /// Reads what `to_bytes` wrote (a file without `cluster`, from before clusters had ids, has
    /// none); `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<NodeState> {
        // Decoded in `messages.rs`, with the messages of the same shapes.
        crate::core::messages::node_state(&serde_json::from_slice(bytes).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_state_round_trips_and_refuses_junk() {
        let mut state = NodeState {
            id: "00000000000000aa".into(),
            term: 7,
            vote: Some("00000000000000bb".into()),
            cluster: None,
            committed: None,
        };
        assert_eq!(NodeState::from_bytes(&state.to_bytes()), Some(state.clone()));
        state.cluster = Some("00000000000000cc".into());
        let checksum = crate::core::version::Checksum::parse_hex(&"ab".repeat(20)).unwrap();
        state.committed = Some(Accepted { term: 6, version: crate::core::version::Version { sequence: 12, checksum } });
        assert_eq!(NodeState::from_bytes(&state.to_bytes()), Some(state));
        let old = NodeState::from_bytes(b"{\"id\": \"00000000000000aa\", \"term\": 1, \"vote\": null}").unwrap();
        assert_eq!(old.cluster, None, "a file from before cluster ids has none");
        assert_eq!(NodeState::from_bytes(b"{\"id\": \"x\", \"term\": 1, \"vote\": null}"), None);
        assert_eq!(
            NodeState::from_bytes(b"{\"id\": \"00000000000000aa\", \"term\": 1, \"vote\": null, \"cluster\": 5}"),
            None
        );
        assert_eq!(NodeState::from_bytes(b"{\"id\": \"00000000000000aa\""), None);
    }
}
