//! Lighthouse: a highly-available, light-weight, in-memory distributed store for one JSON
//! document, served over HTTP.
//!
//! # The architecture in a page
//!
//! **One thread owns everything.** `event_loop` runs a hand-written, edge-triggered mio loop that
//! multiplexes the listener, every client connection, and a waker. It parses HTTP with httparse
//! (`http`), hands each complete request to the core, and writes the answers back in order. No
//! locks or atomics guard the store, because only this thread ever touches it.
//!
//! **The core is pure.** `core::Node` holds the store, its version, the render cache (and, as the
//! project grows, the lock and the cluster table). It takes `(now, input)` and returns an answer,
//! queueing effects (answers to parked requests, jobs for the writer) for the loop to carry out.
//! It never reads a clock, a socket or a file, so tests drive it directly.
//!
//! **The document is a shared tree.** `value::Value` keeps arrays and objects behind `Arc`s, so a
//! copy of the whole store costs one reference count and an edit copies only its path.
//!
//! **Disk work leaves the loop.** `flush::Writer` is one thread fed immutable jobs (a store to
//! serialize, hash and write durably); it reports back through a channel and a `mio::Waker`.
//! `snapshot` is the file format; `limits` is every bound and period with its reason.
//!
//! Tokens: 0 is the listener, 1 the writer's waker, 2 the signal pipe, 16 and up the connections.
#![deny(unsafe_code)]

pub mod buffer;
pub mod clock;
pub mod config;
pub mod core;
pub mod event_loop;
pub mod flush;
pub mod http;
pub mod limits;
pub mod path;
pub mod peers;
pub mod server;
pub mod snapshot;
pub mod sys;
pub mod value;
pub mod version;
