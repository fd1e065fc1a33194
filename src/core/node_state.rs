//! What a node keeps on disk beside its snapshots, in coordinated mode: its random id, the newest
//! term it knows, and whom it voted for in that term. A vote is written (and fsync'd) before it is
//! answered, so a node never votes twice in a term, across restarts too.

use crate::core::members::valid_id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub id: String,
    pub term: u64,
    /// The candidate voted for in `term`.
    pub vote: Option<String>,
}

impl NodeState {
    /// `{"id":"...","term":T,"vote":"..."|null}` with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes =
            serde_json::json!({"id": self.id, "term": self.term, "vote": self.vote}).to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    }

    /// Reads what `to_bytes` wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<NodeState> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let id = value.get("id")?.as_str()?.to_string();
        let term = value.get("term")?.as_u64()?;
        let vote = match value.get("vote")? {
            serde_json::Value::Null => None,
            vote => Some(vote.as_str()?.to_string()),
        };
        (valid_id(&id) && vote.as_deref().is_none_or(valid_id)).then_some(NodeState { id, term, vote })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_state_round_trips_and_refuses_junk() {
        let state = NodeState { id: "00000000000000aa".into(), term: 7, vote: Some("00000000000000bb".into()) };
        assert_eq!(NodeState::from_bytes(&state.to_bytes()), Some(state));
        assert_eq!(NodeState::from_bytes(b"{\"id\": \"x\", \"term\": 1, \"vote\": null}"), None);
        assert_eq!(NodeState::from_bytes(b"{\"id\": \"00000000000000aa\""), None);
    }
}
