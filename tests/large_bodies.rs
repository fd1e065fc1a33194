//! Large request bodies as a user sends them (`curl --data-binary @big.json`): what parsing one
//! costs in the server's memory, read from `/proc/PID/status` (`VmHWM`, the peak resident size).

mod support;

use support::{Server, curl};

/// A process's peak resident memory, in bytes.
fn peak_resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_put_of_a_large_array_of_numbers_peaks_at_a_few_times_its_size() {
    let server = Server::start(&[]);
    // 4.2 million integers, 32 MB of text: 24 bytes each in the tree, 100 MB. Parsing held them
    // twice (the parser's scratch vector, then the array): 7.2 times the body at the peak. Now
    // the body, the tree and at most one block of the scratch stack (48 MiB): 5.7 times here,
    // 5.0 for a 65 MB body.
    let body = format!("[{}]", (0..4_200_000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let dir = support::TempDir::new("large-bodies");
    let file = dir.path().join("big.json");
    std::fs::write(&file, &body).unwrap();
    let before = peak_resident_bytes(server.child.id());
    let data = format!("@{}", file.display());
    let (code, answer) = curl(&["-s", "-X", "PUT", "--data-binary", &data, &server.url("/data")]);
    assert!(code == 0 && answer.contains("sequence"), "{code} {answer}");
    let peak = peak_resident_bytes(server.child.id()) - before;
    let times = peak as f64 / body.len() as f64;
    assert!(times < 6.5, "a {} byte body took {peak} bytes at the peak ({times:.1} times)", body.len());
}
