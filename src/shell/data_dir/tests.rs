use super::*;
use crate::core::jobs::{self, Done, Job, JobId, Owner};
use crate::core::lineage::Lineage;
use crate::core::sealed::Sealed;
use crate::core::snapshot::{NodeJson, Snapshot, decode_keeping};
use crate::core::value::Value;
use crate::core::version::{Checksum, Version};

/// The newest snapshot in `dir` that decodes, with its file.
fn load_newest(dir: &Path) -> io::Result<Option<(PathBuf, Snapshot)>> {
    for (_, file) in list(dir)? {
        if let Ok(snapshot) = decode_keeping(&fs::read(&file)?, true) {
            return Ok(Some((file, snapshot)));
        }
    }
    Ok(None)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lighthouse-data-dir-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, keep_micros: u64, keep_count: usize, damaged: Vec<PathBuf>) -> DiskConfig {
    let (change_files, chain) = (Vec::new(), ChainState::default());
    DiskConfig { dir: Some(dir.to_path_buf()), keep_micros, keep_count, damaged, change_files, chain }
}

#[test]
fn a_seal_job_writes_a_file_that_loads_back() {
    let dir = temp_dir("write");
    let mut data_dir = DataDir::new(config(&dir, u64::MAX, 20, Vec::new()), &[]);
    let root = Value::parse(br#"{"a": [1, 2]}"#).unwrap();
    let parent = Lineage::of(Version::initial());
    let job = Job::Seal {
        id: JobId { serial: 7, owner: Owner::Disk },
        sequence: 1,
        root: root.clone(),
        parent,
        before: None,
        node: NodeJson::default(),
        coordination: None,
        write: true,
        body_needed: false,
    };
    let Done::Sealed { id, sealed, file, .. } = jobs::run(job, &mut data_dir, &mut || {}) else {
        panic!("a seal job reports");
    };
    assert_eq!((id.serial, sealed.copy.version.checksum), (7, Checksum::of(&root)));
    let file = file.unwrap().unwrap();
    let (loaded_file, snapshot) = load_newest(&dir).unwrap().unwrap();
    assert_eq!(loaded_file, file);
    assert_eq!(snapshot.sealed.copy.root, root);
    assert_eq!(snapshot.sealed.copy.version, sealed.copy.version);
    assert_eq!(snapshot.sealed.body, sealed.body);
    fs::remove_dir_all(dir).unwrap();
}

/// Seals `count` commits on an empty store with `disk`'s rules, starting from what is in the
/// directory.
fn commit_many(disk: DiskConfig, count: u64) {
    let files = list(disk.dir.as_ref().unwrap()).unwrap();
    let mut data_dir = DataDir::new(disk, &files);
    let mut parent = Lineage::of(Version::initial());
    for sequence in 1..=count {
        let (root, node) = (Value::default(), NodeJson::default());
        let job = Job::Seal {
            id: JobId { serial: sequence, owner: Owner::Disk },
            sequence,
            root,
            parent: parent.clone(),
            before: None,
            node,
            coordination: None,
            write: true,
            body_needed: false,
        };
        let Done::Sealed { sealed, .. } = jobs::run(job, &mut data_dir, &mut || {}) else { panic!() };
        data_dir.tidy();
        parent = sealed.copy.lineage;
    }
}

#[test]
fn expired_snapshots_are_removed_but_never_the_newest() {
    let dir = temp_dir("retention");
    fs::write(dir.join(snapshot::file_name(1_000_000)), b"{}").unwrap();
    commit_many(config(&dir, 1, 20, Vec::new()), 2);
    let left = list(&dir).unwrap();
    assert_eq!(left.len(), 1, "only the newest is kept: {left:?}");
    assert_eq!(load_newest(&dir).unwrap().unwrap().1.sealed.copy.version.sequence, 2);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn at_most_keep_count_snapshots_stay_and_damaged_files_are_never_removed() {
    let dir = temp_dir("count");
    let damaged = dir.join(snapshot::file_name(1_000_000));
    fs::write(&damaged, b"{not json").unwrap();
    commit_many(config(&dir, u64::MAX, 3, vec![damaged]), 10);
    let left: Vec<u64> = list(&dir).unwrap().iter().map(|(time, _)| *time).collect();
    assert_eq!(left.len(), 4, "three snapshots and the damaged file: {left:?}");
    assert_eq!(*left.last().unwrap(), 1_000_000, "the damaged file stays");
    assert_eq!(load_newest(&dir).unwrap().unwrap().1.sealed.copy.version.sequence, 10);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn snapshot_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("private");
    commit_many(config(&dir, u64::MAX, 3, Vec::new()), 1);
    let (_, file) = list(&dir).unwrap().remove(0);
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let nested = dir.join("a/b");
    create_private_dir(&nested).unwrap();
    assert_eq!(fs::metadata(&nested).unwrap().permissions().mode() & 0o777, 0o700);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_write_of_node_json_names_it_not_the_snapshot() {
    let dir = temp_dir("state-error");
    // A regular file where the directory should be: the write fails, even for root.
    let not_a_dir = dir.join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let mut data_dir = DataDir::new(config(&not_a_dir, u64::MAX, 20, Vec::new()), &[]);
    let state = NodeState::new("0123456789abcdef".into());
    let error = data_dir.save_state(&state).unwrap_err();
    assert_eq!(error.status, 503);
    assert!(error.message.starts_with("cannot write this node's state"), "{}", error.message);
    assert!(!error.message.contains("snapshot"), "{}", error.message);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn names_always_increase() {
    let mut data_dir =
        DataDir::new(config(Path::new("/x"), 1, 1, Vec::new()), &[(4_000_000_000_000_000, PathBuf::from("x"))]);
    let (a, b) = (data_dir.next_name(), data_dir.next_name());
    assert!(b > a);
}

/// Seals a commit of `root` on `before` (its change from it) into `data_dir`; a full
/// snapshot if `full`.
fn commit_on(data_dir: &mut DataDir, before: &Sealed, root: Value, full: bool) -> (Sealed, PathBuf) {
    let sequence = before.copy.version.sequence + 1;
    let job = Job::Seal {
        id: JobId { serial: sequence, owner: Owner::Disk },
        sequence,
        root,
        parent: before.copy.lineage.clone(),
        before: (!full).then(|| (before.copy.version, before.copy.root.clone())),
        node: NodeJson::default(),
        coordination: None,
        write: true,
        body_needed: false,
    };
    let Done::Sealed { sealed, file, .. } = jobs::run(job, data_dir, &mut || {}) else { panic!() };
    data_dir.tidy();
    (sealed, file.unwrap().unwrap())
}

/// A store of about `bytes` of JSON: keys `k0`, `k1`, ... holding 100-character strings.
fn store_of(bytes: usize, extra: u64) -> Value {
    let mut text = String::from("{");
    for i in 0..bytes / 110 {
        text.push_str(&format!("\"k{i}\":\"{}\",", "x".repeat(100)));
    }
    text.push_str(&format!("\"extra\":{extra}}}"));
    Value::parse(text.as_bytes()).unwrap()
}

#[test]
fn a_commit_on_the_newest_file_is_a_change_file_of_about_the_change_and_loads_back() {
    use crate::core::startup::{Flags, decide};
    let dir = temp_dir("change");
    let mut data_dir = DataDir::new(config(&dir, u64::MAX, 20, Vec::new()), &[]);
    let empty = crate::core::sealed::seal(Value::default(), 0, None);
    let (mut sealed, first) = commit_on(&mut data_dir, &empty, store_of(1 << 20, 0), false);
    assert!(fs::metadata(&first).unwrap().len() > 1 << 20, "the first file is a full snapshot");
    for extra in 1..=3 {
        let file;
        (sealed, file) = commit_on(&mut data_dir, &sealed, store_of(1 << 20, extra), false);
        let size = fs::metadata(&file).unwrap().len();
        assert!(size < 4096, "a one-key change into a 1 MB store wrote {size} bytes");
        assert!(crate::core::change_file::is_change_file(&fs::read(&file).unwrap()));
        // Written as a change, the commit hashed the store without rendering it (item 4).
        assert!(sealed.body.is_empty(), "the body is set aside");
        assert_eq!(sealed.data_len, sealed.copy.root.to_compact().len());
        assert_eq!(sealed.copy.version.checksum, Checksum::of(&sealed.copy.root));
    }
    let startup = decide(Some(&mut StartupDir(&dir)), &Flags::default(), &mut || 7).unwrap();
    assert_eq!(startup.start.sealed.copy.version, sealed.copy.version);
    assert!(startup.start.sealed.copy.root.same_content(&store_of(1 << 20, 3)));
    assert_eq!(startup.chain.commits, 3);
    assert_eq!(startup.change_files.len(), 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn retention_removes_whole_chains_and_never_the_newest_one() {
    let dir = temp_dir("chains");
    let mut data_dir = DataDir::new(config(&dir, u64::MAX, 2, Vec::new()), &[]);
    let mut sealed = crate::core::sealed::seal(Value::default(), 0, None);
    for extra in 1..=4 {
        sealed = commit_on(&mut data_dir, &sealed, store_of(1000, extra), false).0;
    }
    assert_eq!(list(&dir).unwrap().len(), 4, "a full snapshot and its three changes stay, past --keep-snapshots");
    sealed = commit_on(&mut data_dir, &sealed, store_of(1000, 5), true).0;
    assert_eq!(list(&dir).unwrap().len(), 1, "the older chain goes whole once a newer full snapshot stands");
    commit_on(&mut data_dir, &sealed, store_of(1000, 6), false);
    assert_eq!(list(&dir).unwrap().len(), 2);
    fs::remove_dir_all(dir).unwrap();
}
