//! Hostile and broken clients: slow ones, ones that never finish, garbage at full speed. None may
//! crash the server, hang it, or slow down a well-behaved client.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Client, Rng, Server, transact};

/// Latencies of `count` keep-alive requests from a well-behaved client, in order, in µs.
fn timed_reads(server: &Server, count: usize) -> Vec<u128> {
    let mut client = Client::connect(server.addr);
    (0..count)
        .map(|_| {
            let started = Instant::now();
            client.send_request("GET", "/data/providers", &[], b"");
            let answer = client.read_response();
            assert_eq!(answer.status, 200);
            assert_eq!(answer.text(), "{\n  \"beta\": [\n    \"10.0.0.1\"\n  ]\n}\n", "a correct answer");
            started.elapsed().as_micros()
        })
        .collect()
}

fn percentile(mut values: Vec<u128>, p: usize) -> u128 {
    values.sort_unstable();
    values[(values.len() * p / 100).min(values.len() - 1)]
}

fn seeded() -> Server {
    let server = Server::start(&[]);
    assert_eq!(transact(&server, "w", "/providers", r#"{"beta": ["10.0.0.1"]}"#).status, 200);
    server
}

#[test]
fn three_thousand_slow_clients_holding_half_a_request_do_not_slow_a_normal_client() {
    let server = seeded();
    let baseline = timed_reads(&server, 300);
    let mut slow: Vec<TcpStream> = Vec::new();
    for i in 0..3000 {
        let mut stream = TcpStream::connect(server.addr).expect("connects");
        let half: &[u8] = if i % 2 == 0 {
            b"GET /data/providers HTTP/1.1\r\nHost: sl"
        } else {
            b"PUT /lock HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf"
        };
        stream.write_all(half).unwrap();
        slow.push(stream);
    }
    let beside = timed_reads(&server, 300);
    let (before, after) = (percentile(baseline, 99), percentile(beside.clone(), 99));
    eprintln!(
        "normal client p99: {before} µs alone, {after} µs beside 3,000 slow clients (max {} µs)",
        beside.iter().max().unwrap()
    );
    assert!(after < 20_000, "p99 {after} µs beside slow clients");
    drop(slow);
}

#[test]
fn a_head_that_never_completes_is_closed_after_the_head_timeout() {
    let server = seeded();
    let mut stalled = Client::connect(server.addr);
    stalled.send(b"GET /data HTTP/1.1\r\nHost: never-fini");
    let started = Instant::now();
    let answer = stalled.read_response();
    assert_eq!(answer.status, 408);
    assert!(stalled.is_closed_by_server());
    let waited = started.elapsed();
    assert!((Duration::from_secs(9)..Duration::from_secs(12)).contains(&waited), "closed after {waited:?}");
}

#[test]
fn malformed_requests_of_every_kind_get_a_4xx_and_the_server_lives_on() {
    let server = seeded();
    let cases: &[&[u8]] = &[
        b"GET /data HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        b"PUT /lock HTTP/1.1\r\nContent-Length: 1e9\r\n\r\n",
        b"PUT /lock HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"PUT /lock HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"PUT /lock HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        b"PUT /lock HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
        b"PUT /lock HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeXY",
        b"PUT /lock HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET /data/%zz HTTP/1.1\r\n\r\n",
        b"GET /data/%C3%28 HTTP/1.1\r\n\r\n",
        b"GET /data HTTP/3.0\r\n\r\n",
        b"GET /data HTTP/1.1.1\r\n\r\n",
        b"GET /data\r\n\r\n",
        b"\x00\x00\x00\x00\x00\x00\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET /data HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /data HTTP/1.1\r\nX: \x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
    ];
    for case in cases {
        let mut client = Client::connect(server.addr);
        client.send(case);
        let answer = client.read_response();
        assert!(
            (400..500).contains(&answer.status) || answer.status == 501,
            "{:?} got {}",
            String::from_utf8_lossy(case),
            answer.status
        );
    }
    assert_eq!(timed_reads(&server, 5).len(), 5, "still serving");
}

#[test]
fn a_normal_client_gets_correct_answers_while_eight_others_send_garbage_at_full_speed() {
    let server = seeded();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..8u64)
        .map(|i| {
            let (stop, sent, addr) = (stop.clone(), sent.clone(), server.addr);
            std::thread::spawn(move || {
                let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (i + 1));
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr) else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let garbage: Vec<u8> = match rng.below(4) {
                        0 => (0..1 + rng.below(3000)).map(|_| rng.next_u64() as u8).collect(),
                        1 => format!("GET /{} HTTP/1.1\r\n\r\n", "%".repeat(rng.below(50) as usize)).into_bytes(),
                        2 => format!("PUT /lock HTTP/1.1\r\nContent-Length: {}\r\n\r\n", rng.next_u64()).into_bytes(),
                        _ => b"PUT /update/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&garbage);
                    let _ = stream.read(&mut buffer);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        latencies.extend(timed_reads(&server, 50));
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.join().unwrap();
    }
    let garbage = sent.load(Ordering::Relaxed);
    eprintln!(
        "{} correct answers in 3 s (p99 {} µs) while 8 clients sent {garbage} garbage requests",
        latencies.len(),
        percentile(latencies.clone(), 99)
    );
    assert!(garbage > 1000, "the attackers were busy: {garbage}");
    assert!(latencies.len() > 200, "the normal client was served: {}", latencies.len());
    assert_eq!(server.get("/health").status, 200);
}
