//! Who writes in a cluster with coordinated writes: the voters, the cluster they form, and the
//! term a version was accepted in. Every version carries them (`Coordination`, in the copy body),
//! so membership changes only through a commit, like any change of the store, and a node that
//! loads or receives a version knows the voters that version was made by.

use crate::limits::REMOVED_MEMBERS_MAX;

/// A node of the cluster: its random id (kept on disk, new when its data directory is) and the
/// address peers know it by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub id: String,
    pub address: String,
}

impl Member {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"id": self.id, "address": self.address})
    }

    /// Decoded in `messages.rs`, with every other peer message.
    pub fn from_json(value: &serde_json::Value) -> Option<Member> {
        crate::core::messages::member(value)
    }
}

/// What a version carries in coordinated mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    /// The cluster's id, made when it was started (`--bootstrap`, or a first node without seeds).
    pub cluster: String,
    /// The term the version was accepted in: versions order by (term, sequence).
    pub term: u64,
    /// The voters, sorted by id.
    pub voters: Vec<Member>,
    /// Ids removed from the cluster (newest last, at most `REMOVED_MEMBERS_MAX`): never promoted
    /// again.
    pub removed: Vec<String>,
}

impl Coordination {
    /// `{"cluster":"...","removed":[...],"term":T,"voters":[{"address":...,"id":...}]}`, compact.
    pub fn to_compact(&self) -> String {
        let voters: Vec<serde_json::Value> = self.voters.iter().map(Member::to_json).collect();
        serde_json::json!({"cluster": self.cluster, "removed": self.removed, "term": self.term, "voters": voters})
            .to_string()
    }

    /// Decoded in `messages.rs`, with every other peer message (a copy carries it).
    pub fn from_json(value: &serde_json::Value) -> Option<Coordination> {
        crate::core::messages::coordination(value)
    }

    pub fn is_voter(&self, id: &str) -> bool {
        self.voters.iter().any(|m| m.id == id)
    }

    /// How many acknowledgments (or votes) make a majority of the voters.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The same voters, re-stamped in `term`.
    pub fn in_term(&self, term: u64) -> Coordination {
        Coordination { term, ..self.clone() }
    }

    /// With `member` added as a voter (replacing none).
    pub fn adding(&self, member: Member, term: u64) -> Coordination {
        let mut next = self.in_term(term);
        next.voters.push(member);
        next.voters.sort();
        next
    }

    /// Without the voter `id`, which is remembered as removed.
    pub fn removing(&self, id: &str, term: u64) -> Coordination {
        let mut next = self.in_term(term);
        next.voters.retain(|m| m.id != id);
        next.removed.retain(|r| r != id);
        next.removed.push(id.to_string());
        if next.removed.len() > REMOVED_MEMBERS_MAX {
            next.removed.remove(0);
        }
        next
    }
}

/// Node and cluster ids are 16 lower-case hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new id from a random number.
pub fn new_id(random: u64) -> String {
    format!("{random:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u64) -> Member {
        Member { id: new_id(n), address: format!("10.0.0.{n}:8001") }
    }

    #[test]
    fn coordination_round_trips_and_counts_majorities() {
        let c = Coordination { cluster: new_id(99), term: 3, voters: vec![member(1), member(2)], removed: vec![] };
        let json: serde_json::Value = serde_json::from_str(&c.to_compact()).unwrap();
        assert_eq!(Coordination::from_json(&json), Some(c.clone()));
        assert_eq!(c.majority(), 2);
        let three = c.adding(member(3), 4);
        assert_eq!((three.majority(), three.term, three.voters.len()), (2, 4, 3));
        let two = three.removing(&new_id(1), 5);
        assert!(!two.is_voter(&new_id(1)) && two.removed == vec![new_id(1)]);
        assert_eq!(Coordination::from_json(&serde_json::json!({"cluster": "x", "term": 1, "voters": []})), None);
    }
}
