use std::collections::BTreeMap;

use super::*;
use crate::core::change::Change;
use crate::core::sealed::{Sealed, seal};
use crate::core::snapshot::NodeJson;
use crate::core::startup::{Directory, Flags, decide};
use crate::core::value::Value;

/// A directory in memory: names to bytes, every operation done at once (what `kill -9` keeps),
/// the operations that change it, and how many more it takes before the process dies (`None`:
/// it lives on).
#[derive(Default, Clone)]
struct Memory(BTreeMap<String, Vec<u8>>, Vec<String>, Option<usize>);

impl Memory {
    /// One more operation, or the process is dead.
    fn step(&mut self) -> io::Result<()> {
        match &mut self.2 {
            Some(0) => Err(io::Error::other("dead")),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Files for Memory {
    fn names(&mut self) -> io::Result<Vec<String>> {
        Ok(self.0.keys().cloned().collect())
    }
    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.0.get(name).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn write(
        &mut self,
        name: &str,
        create: bool,
        _: Sync,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()> {
        self.step()?;
        self.1.push(format!("write {name}"));
        if !create && !self.0.contains_key(name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        self.0.insert(name.to_string(), bytes);
        Ok(())
    }
    fn sync(&mut self, _: &str) -> io::Result<()> {
        self.step()
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.step()?;
        self.1.push(format!("rename {from} {to}"));
        let bytes = self.0.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.0.insert(to.to_string(), bytes);
        Ok(())
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.step()?;
        self.0.remove(name).map(|_| ()).ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        self.step()?;
        self.1.push("sync_dir".into());
        Ok(())
    }
}

/// A snapshot file of `{"n": sequence}` at `sequence`.
fn file(sequence: u64) -> Vec<u8> {
    let sealed = seal(Value::parse(format!(r#"{{"n": {sequence}}}"#).as_bytes()).unwrap(), sequence, None);
    let mut bytes = Vec::new();
    snapshot::encode(&mut bytes, &NodeJson::default(), &sealed.body, &mut || {}).unwrap();
    bytes
}

fn put(bytes: Vec<u8>) -> impl FnMut(&mut dyn io::Write) -> io::Result<()> {
    move |out| out.write_all(&bytes)
}

#[test]
fn a_file_goes_into_a_spare_and_gets_its_name_when_the_writer_settles() {
    let mut dir = Memory::default();
    let mut spares = Spares::new(&[]);
    settle(&mut dir, &mut spares).unwrap();
    assert_eq!(dir.0.len(), SPARE_FILES, "spares made: {:?}", dir.0.keys());
    assert!(!spares.unsettled());
    dir.1.clear();
    let name = snapshot::file_name(1_800_000_000_000_000);
    write_new(&mut dir, &mut spares, &name, &mut put(file(1))).unwrap();
    assert_eq!(dir.1.len(), 1, "one write into a spare, no directory sync: {:?}", dir.1);
    assert!(spares.holds(&name) && !dir.0.contains_key(&name));
    settle(&mut dir, &mut spares).unwrap();
    assert_eq!(dir.0.get(&name), Some(&file(1)));
    assert_eq!(dir.0.len(), SPARE_FILES + 1);
    assert_eq!(dir.1.iter().filter(|op| *op == "sync_dir").count(), 1, "one directory sync: {:?}", dir.1);
}

#[test]
fn without_a_spare_the_pending_ones_are_named_before_the_file_is_written_whole() {
    let mut dir = Memory::default();
    let mut spares = Spares::new(&[]);
    settle(&mut dir, &mut spares).unwrap();
    dir.1.clear();
    let names: Vec<String> = (0..=SPARE_FILES as u64).map(|i| snapshot::file_name(1_800_000_000_000_000 + i)).collect();
    for (i, name) in names.iter().enumerate() {
        write_new(&mut dir, &mut spares, name, &mut put(file(i as u64 + 1))).unwrap();
    }
    assert!(spares.exhausted() && !spares.holds(&names[SPARE_FILES - 1]), "the last one took the cycle");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(dir.0.get(name), Some(&file(i as u64 + 1)), "{name}");
    }
    let renamed = dir.1.iter().position(|op| op.starts_with("rename .spare-")).unwrap();
    let temporary = dir.1.iter().position(|op| op.ends_with(".json.tmp")).unwrap();
    assert!(renamed < temporary, "{:?}", dir.1);
}

#[test]
fn start_up_places_whole_spares_in_version_order_and_removes_the_rest() {
    let mut dir = Memory::default();
    let newest = 1_800_000_000_000_000;
    dir.0.insert(snapshot::file_name(newest), file(1));
    dir.0.insert(".spare-7".into(), file(3));
    dir.0.insert(".spare-8".into(), file(2));
    dir.0.insert(".spare-9".into(), Vec::new());
    let cut = file(4);
    dir.0.insert(".spare-10".into(), cut[..cut.len() - 5].to_vec());
    recover(&mut dir, 0).unwrap();
    let names: Vec<(&String, &Vec<u8>)> = dir.0.iter().collect();
    assert_eq!(names.len(), 4, "{:?}", dir.0.keys());
    assert_eq!(names[0], (&".spare-9".to_string(), &Vec::new()), "an empty spare stays a spare");
    assert_eq!(names[2], (&snapshot::file_name(newest + 1), &file(2)));
    assert_eq!(names[3], (&snapshot::file_name(newest + 2), &file(3)));
    let spares = Spares::new(&dir.names().unwrap());
    assert_eq!((spares.ready.as_slice(), spares.next), ([".spare-9".to_string()].as_slice(), 10));
}

#[test]
fn commits_go_into_the_ready_spares_while_a_settle_runs_and_the_whole_cycle_waits_for_it() {
    let mut dir = Memory::default();
    let mut spares = Spares::new(&[]);
    settle(&mut dir, &mut spares).unwrap();
    let names: Vec<String> = (0..40).map(|i| snapshot::file_name(1_800_000_000_000_000 + i)).collect();
    let half = SPARE_FILES / 2;
    for (i, name) in names[..half].iter().enumerate() {
        write_new(&mut dir, &mut spares, name, &mut put(file(i as u64 + 1))).unwrap();
    }
    let mut work = begin(&mut spares).unwrap();
    assert!(begin(&mut spares).is_none(), "one settle at a time");
    dir.1.clear();
    for (i, name) in names[half..SPARE_FILES].iter().enumerate() {
        write_new(&mut dir, &mut spares, name, &mut put(file((half + i) as u64 + 1))).unwrap();
    }
    assert_eq!(dir.1.len(), SPARE_FILES - half, "one write into a spare each, no directory sync: {:?}", dir.1);
    let blocked = write_new(&mut dir, &mut spares, &names[SPARE_FILES], &mut put(file(99)));
    assert_eq!(blocked.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    assert_eq!(dir.1.len(), SPARE_FILES - half, "nothing written while the settle runs: {:?}", dir.1);
    let result = run(&mut dir, &mut work);
    finish(&mut spares, work, result).unwrap();
    assert_eq!(spares.ready(), SPARE_FILES - half, "the spares made are ready");
    for (i, name) in names[..half].iter().enumerate() {
        assert_eq!(dir.0.get(name), Some(&file(i as u64 + 1)), "{name} renamed by the settle");
    }
    assert!(spares.holds(&names[half]), "the files written meanwhile wait for the next settle");
}

/// Writes `count` files (sequences from `first`) as the writer does, noting the answered ones.
fn commit(dir: &mut Memory, spares: &mut Spares, first: u64, count: u64, answered: &mut Vec<u64>) {
    for sequence in first..first + count {
        let name = snapshot::file_name(1_800_000_000_000_000 + sequence);
        if write_new(dir, spares, &name, &mut put(file(sequence))).is_ok() {
            answered.push(sequence);
        }
    }
}

#[test]
fn a_crash_at_any_step_of_a_settle_beside_writes_loses_no_answered_file_and_keeps_their_order() {
    let half = SPARE_FILES as u64 / 2;
    for cut in 0..3 * SPARE_FILES + 20 {
        let mut dir = Memory::default();
        let mut spares = Spares::new(&[]);
        settle(&mut dir, &mut spares).unwrap();
        let mut answered = Vec::new();
        commit(&mut dir, &mut spares, 1, half, &mut answered);
        dir.2 = Some(cut);
        let mut work = begin(&mut spares).unwrap();
        commit(&mut dir, &mut spares, half + 1, 2, &mut answered);
        let result = run(&mut dir, &mut work);
        commit(&mut dir, &mut spares, half + 3, 2, &mut answered);
        let _ = finish(&mut spares, work, result);
        commit(&mut dir, &mut spares, half + 5, SPARE_FILES as u64, &mut answered);
        let _ = settle(&mut dir, &mut spares);
        // The process dies here (`kill -9` keeps every operation done) and starts again.
        let mut after = Memory(dir.0.clone(), Vec::new(), None);
        recover(&mut after, 0).unwrap();
        let loaded: Vec<u64> = after
            .0
            .iter()
            .filter(|(name, _)| snapshot::parse_file_name(name).is_some())
            .map(|(_, bytes)| (1..100).find(|s| *bytes == file(*s)).expect("a whole file"))
            .collect();
        for sequence in &answered {
            assert!(loaded.contains(sequence), "cut after {cut}: answered {sequence} lost: {loaded:?}");
        }
        assert!(loaded.windows(2).all(|w| w[0] < w[1]), "cut after {cut}: files out of order: {loaded:?}");
    }
}

/// The version `{"n": sequence}` at `sequence`, sealed after `before`.
fn version(sequence: u64, before: Option<&Sealed>) -> Sealed {
    let root = Value::parse(format!(r#"{{"n": {sequence}, "same": [1, 2, 3]}}"#).as_bytes()).unwrap();
    seal(root, sequence, before.map(|b| &b.copy.lineage))
}

/// A full snapshot of `sealed`, as `chain::write_version` writes it.
fn full(sealed: &Sealed) -> Vec<u8> {
    let mut bytes = Vec::new();
    snapshot::encode(&mut bytes, &NodeJson::default(), &sealed.body, &mut || {}).unwrap();
    bytes
}

/// The change file of `after`, applying to `before`.
fn change(before: &Sealed, after: &Sealed) -> Vec<u8> {
    let version = |s: &Sealed| s.copy.version;
    let change = Change::between(version(before), &before.copy.root, version(after), &after.copy.root).unwrap();
    change_file::encode(&NodeJson::default(), &change, &after.copy)
}

/// `Memory` as start-up reads it.
impl Directory for Memory {
    fn snapshots(&mut self) -> Result<Vec<(u64, String)>, String> {
        Ok(self.0.keys().filter_map(|n| Some((snapshot::parse_file_name(n)?, n.clone()))).collect())
    }
    fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        self.0.get(name).cloned().ok_or_else(|| "no such file".into())
    }
    fn tail(&mut self, name: &str) -> Result<Vec<u8>, String> {
        Directory::read(self, name)
    }
    fn node_state(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

#[test]
fn start_up_places_the_change_file_of_a_version_before_its_full_snapshot_so_the_chain_after_it_loads() {
    // A chain compacted at sequence 2 (its change file, then a full snapshot of it, then the
    // change file of 3 on top), written into spares after a settle (the writer takes the newest
    // spare first), and killed before the next settle.
    let mut dir = Memory::default();
    let mut spares = Spares::new(&[]);
    settle(&mut dir, &mut spares).unwrap();
    let micros = 1_800_000_000_000_000;
    let one = version(1, None);
    let two = version(2, Some(&one));
    let three = version(3, Some(&two));
    let written = [full(&one), change(&one, &two), full(&two), change(&two, &three)];
    write_new(&mut dir, &mut spares, &snapshot::file_name(micros), &mut put(written[0].clone())).unwrap();
    settle(&mut dir, &mut spares).unwrap();
    for (i, bytes) in written.iter().enumerate().skip(1) {
        write_new(&mut dir, &mut spares, &snapshot::file_name(micros + i as u64), &mut put(bytes.clone())).unwrap();
    }
    recover(&mut dir, 0).unwrap();
    let placed: Vec<&Vec<u8>> =
        dir.0.iter().filter(|(n, _)| snapshot::parse_file_name(n).is_some()).map(|f| f.1).collect();
    assert!(placed.iter().copied().eq(written.iter()), "placed in the order they were written");
    // Retention may remove every chain before the newest full snapshot's: the newest version
    // still loads.
    let newest_full =
        dir.0.iter().filter(|(n, b)| snapshot::parse_file_name(n).is_some() && !change_file::is_change_file(b));
    let newest_full = newest_full.map(|(n, _)| n.clone()).max().unwrap();
    dir.0.retain(|n, _| snapshot::parse_file_name(n).is_none() || *n >= newest_full);
    let start = decide(Some(&mut dir), &Flags::default(), &mut || 7).expect("it starts").start;
    assert_eq!(start.sealed.copy.version, three.copy.version);
}
