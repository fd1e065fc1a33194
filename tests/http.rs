//! The HTTP layer as clients meet it: keep-alive, HTTP/1.0, pipelining, bodies in every framing,
//! 100-continue, limits with their exact status codes, and many connections at once.

mod support;

use std::time::{Duration, Instant};

use support::{Client, Server};

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /data/missing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /data HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let first = client.read_response();
    let second = client.read_response();
    let third = client.read_response();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["sequence"], 0);
    assert_eq!(second.status, 404);
    assert_eq!((third.status, third.text().as_str()), (200, "{}\n"));
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    for _ in 0..100 {
        client.send_request("GET", "/data", &[], b"");
        assert_eq!(client.read_response().status, 200);
    }
}

#[test]
fn http_1_0_closes_after_the_answer_unless_asked_to_keep_alive() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"GET /data HTTP/1.0\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(client.is_closed_by_server(), "an HTTP/1.0 connection closes after the answer");

    let mut client = Client::connect(server.addr);
    client.send(b"GET /data HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(client.read_response().header("Connection"), Some("keep-alive"));
    client.send(b"GET /version HTTP/1.0\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    assert!(client.is_closed_by_server());
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"GET /data HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(client.read_response().header("Connection"), Some("close"));
    assert!(client.is_closed_by_server());
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_answered() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    for byte in b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" {
        client.send(&[*byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.read_response().json()["sequence"], 0);
}

#[test]
fn a_body_sent_one_byte_at_a_time_is_read_whole() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    for byte in b"hello" {
        client.send(&[*byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    // The whole body was read: it is refused as a whole, for not being JSON.
    assert_eq!(client.read_response().status, 400);
    client.send_request("GET", "/version", &[], b"");
    assert_eq!(client.read_response().status, 200, "the body was consumed exactly");
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = client.read_response();
    assert_eq!(interim.status, 100, "100 Continue comes before any body byte is sent");
    client.send(b"[12]");
    assert_eq!(client.read_response().status, 200, "the body arrived and was written");
}

#[test]
fn chunked_bodies_are_decoded_and_the_connection_goes_on() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(client.read_response().status, 100);
    client.send(b"3\r\n[12\r\n4;ext=y\r\n, 34\r\n1\r\n]\r\n0\r\nX-Trailer: 1\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    client.send_request("GET", "/data", &[], b"");
    assert_eq!(client.read_response().text(), "[\n  12,\n  34\n]\n", "the chunks were joined");
    client.send_request("GET", "/version", &[], b"");
    assert_eq!(client.read_response().status, 200);
}

#[test]
fn head_gives_the_headers_of_get_without_a_body() {
    let server = Server::start(&[]);
    let get = server.get("/data");
    let mut client = Client::connect(server.addr);
    client.send(b"HEAD /data HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\n\r\n");
    let head = client.read_response_to(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
    assert_eq!(head.header("ETag"), get.header("ETag"));
    assert!(head.body.is_empty());
    assert_eq!(client.read_response().status, 200, "no stray body bytes after HEAD");
}

#[test]
fn an_oversized_head_gets_431_and_others_are_still_served() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    let big = format!("GET /data HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(17 * 1024));
    client.send(big.as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 431);
    assert!(response.error().contains("too large"));
    assert_eq!(server.get("/version").status, 200);
}

#[test]
fn a_declared_oversized_body_gets_413_before_it_is_sent() {
    let server = Server::start(&["--max-body=1000"]);
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 413, "refused at once, no 100 Continue");
    assert_eq!(response.header("Connection"), Some("close"));
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(client.read_response().status, 413);
    assert_eq!(server.get("/version").status, 200);
}

#[test]
fn a_chunked_body_over_the_limit_gets_413() {
    let server = Server::start(&["--max-body=10"]);
    let mut client = Client::connect(server.addr);
    client.send(b"PUT /data HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n");
    assert_eq!(client.read_response().status, 413);
}

#[test]
fn malformed_requests_get_400_and_the_connection_closes() {
    let server = Server::start(&[]);
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"GET /data HTTP/9.9\r\n\r\n",
        b"GET /data/%zz HTTP/1.1\r\n\r\n",
        b"PUT /data HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"PUT /data HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET data HTTP/1.1\r\n\r\n",
    ] {
        let mut client = Client::connect(server.addr);
        client.send(garbage);
        let response = client.read_response();
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(garbage));
        response.error();
    }
    assert_eq!(server.get("/version").status, 200);
}

#[test]
fn unknown_methods_get_501_and_known_ones_on_the_wrong_resource_405() {
    let server = Server::start(&[]);
    let response = server.request("BREW", "/data", b"");
    assert_eq!(response.status, 501);
    for method in ["POST", "TRACE"] {
        let response = server.request(method, "/data/x", b"1");
        assert_eq!(response.status, 405, "{method} /data/x");
        assert_eq!(response.header("Allow"), Some("GET, HEAD, PUT, PATCH, DELETE"));
    }
    assert_eq!(server.request("DELETE", "/version", b"").status, 405);
}

#[test]
fn a_head_that_never_completes_is_closed_after_the_head_timeout_while_others_are_served() {
    // The head timeout is 10 s; this test only checks that a partial head does not block others.
    let server = Server::start(&[]);
    let mut stalled = Client::connect(server.addr);
    stalled.send(b"GET /data HTTP/1.1\r\nHost:");
    assert_eq!(server.get("/version").status, 200);
}

#[test]
fn fifteen_hundred_concurrent_connections_are_all_answered() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..1500).map(|_| Client::connect(server.addr)).collect();
    for client in &mut clients {
        client.send(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let response = client.read_response();
        assert_eq!(response.status, 200, "connection {i}");
        assert_eq!(response.json()["sequence"], 0, "connection {i}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn connections_over_the_limit_get_503() {
    let server = Server::start(&["--max-connections=2"]);
    let mut a = Client::connect(server.addr);
    let mut b = Client::connect(server.addr);
    a.send_request("GET", "/version", &[], b"");
    b.send_request("GET", "/version", &[], b"");
    assert_eq!(a.read_response().status, 200);
    assert_eq!(b.read_response().status, 200);
    let mut c = Client::connect(server.addr);
    c.send_request("GET", "/version", &[], b"");
    let refused = c.read_response();
    assert_eq!(refused.status, 503);
    assert!(refused.error().contains("too many connections"));
    drop(a);
    support::wait_for("a slot to free up", || {
        let mut d = Client::connect(server.addr);
        d.send_request("GET", "/version", &[], b"");
        d.read_response().status == 200
    });
}

#[test]
fn pipelined_requests_followed_by_a_half_close_are_all_answered() {
    let server = Server::start(&[]);
    let mut client = Client::connect(server.addr);
    let requests = "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(300);
    client.send(requests.as_bytes());
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..300 {
        assert_eq!(client.read_response().status, 200, "answer {i}");
    }
    assert!(client.is_closed_by_server(), "closed after the last answer");
}

#[test]
fn bodies_in_progress_share_a_bounded_budget() {
    // Five uploads declared at 60 MiB each, none sent: together past the 256 MiB budget.
    let server = Server::start(&[]);
    let mut uploads: Vec<Client> = Vec::new();
    let mut refused = 0;
    for _ in 0..5 {
        let mut client = Client::connect(server.addr);
        client.send(b"PUT /lock HTTP/1.1\r\nContent-Length: 62914560\r\nExpect: 100-continue\r\n\r\n");
        let answer = client.read_response();
        match answer.status {
            100 => uploads.push(client),
            503 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((uploads.len(), refused), (4, 1));
    drop(uploads);
    support::wait_for("the budget to be given back", || {
        let mut client = Client::connect(server.addr);
        client.send(b"PUT /lock HTTP/1.1\r\nContent-Length: 62914560\r\nExpect: 100-continue\r\n\r\n");
        client.read_response().status == 100
    });
}
