//! Lighthouse: a highly-available, light-weight, in-memory distributed store for one JSON
//! document, served over HTTP.
//!
//! # The architecture in a page
//!
//! **One thread owns everything.** `event_loop` runs a hand-written, edge-triggered mio loop that
//! multiplexes the listener, every client connection, the outbound connections to peers
//! (`peers`), a waker for the worker threads and a pipe for signals. It parses HTTP with httparse
//! (`http`), hands each complete request to the core, and writes the answers back in order. No
//! locks or atomics guard the store, because only this thread ever touches it.
//!
//! **The core is pure.** `core::Node` holds the store and its render cache, the lock and its
//! transaction, the cluster table, the watchers, the flush queue and the metrics. It takes
//! `(now, input)` (a request, a worker's report, a peer's answer, the passing of time) and returns
//! an answer, queueing effects (answers to parked requests, events for streams, jobs for the
//! workers, requests to peers) for the loop to carry out. It never reads a clock, a socket or a
//! file, so tests drive it directly and `tests/simulation.rs` runs whole clusters of cores on a
//! simulated network.
//!
//! **The document is a shared tree.** `value::Value` keeps arrays and objects behind `Arc`s, so a
//! copy of the whole store costs one reference count and an edit copies only its path.
//!
//! **Long work leaves the loop.** `flush::Workers` are three threads fed immutable jobs: a writer
//! (seal a store: serialize, hash, write and fsync it), a decoder (parse and check copies from
//! peers) and a resolver (DNS). They report back through a channel and a `mio::Waker`. They run
//! at nice 10 and yield the core every 256 KiB of a large render, hash or write, so on a core
//! shared with the loop, reads wait for a piece rather than for a scheduler tick.
//! `snapshot` is the copy and file format; `limits` is every bound and period with its reason.
//!
//! Tokens: 0 is the listener, 1 the workers' waker, 2 the signal pipe, 16 and up the client
//! connections, 2^32 and up the peer links. A ticket (`core::Ticket`) names one parked request:
//! a serial number and its connection's slot.
#![deny(unsafe_code)]

pub mod config;
pub mod core;
pub mod http;
pub mod limits;
pub mod shell;
