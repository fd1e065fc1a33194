//! Lighthouse: a highly-available, light-weight, in-memory distributed store for one JSON
//! document, served over HTTP.
//!
//! # The architecture in a page
//!
//! **A pure core inside a thin I/O shell.** `core` decides everything and does no I/O: a
//! `core::Node` takes the time and one input (a request, a worker's report, a peer's answer, the
//! passing of time) and returns an answer, queueing effects (answers to parked requests, events
//! for streams, jobs for the workers, requests to peers) for the shell to carry out. It never reads
//! a clock, a socket or a file (`tests/architecture.rs` checks its imports), so tests drive it
//! directly and `tests/simulation/` runs whole clusters of cores on a simulated network, clock
//! and disk. `shell` does all the I/O: one thread runs a hand-written, edge-triggered mio loop over
//! the listener, the client connections, the links to peers, a waker for the workers and a pipe
//! for signals; it owns the core outright, so nothing is locked. `http` is the wire format, pure,
//! used by both sides.
//!
//! **Coordinated mode is a value.** A `core::Node` is two values: `Shared`, what every node has
//! (the store, the lock, the disk queue, the peer table, watches, effects, ids, metrics), and an
//! `Option<Coordinated>` (`core/coordinated.rs`): terms, votes and leases (`Consensus`, whose
//! fields are private to `consensus.rs`: every change is one of its named transitions, such as
//! `stand`, `win`, `vote_for`, `take_term`, `follow`, `step_down`, `confirm`), the version
//! accepted and not known committed, the coordinator's commit in flight, the requests forwarded
//! to the coordinator, the voters heard while joining, the last lock dropped, the requests
//! waiting for a lease's renewal and the writes of the commit point. A node of local writes has `None`, so none of its code
//! can reach coordinated state. Each entry point of `Node` (`handle`, `tick`, `next_deadline`,
//! `peer_reply`, `job_done`) splits the two once and steps by mode, as etcd's raft steps by role:
//! the coordinated code is `impl Coordinated` and takes what every node has as `node: &mut
//! Shared`; shared code that may lead into it (routing, a commit, a copy taken, a store changed, a
//! read marked unconfirmed) is handed `co: Option<&mut Coordinated>` from the entry point, so the
//! compiler shows every path that can.
//!
//! **The document is a shared tree.** `core::value::Value` keeps arrays and objects behind `Arc`s,
//! so a copy of the whole store costs one reference count and an edit copies only its path.
//!
//! **Long work leaves the loop.** The shell's workers (`shell::workers`) carry out the core's
//! jobs (`core::jobs::run`: seal a store, write it, check or render a copy, free a version no
//! longer served) on threads fed immutable work,
//! at a lower priority, yielding the core between 256 KiB pieces; they report through a channel
//! and a `mio::Waker`, like Redis's `bio.c`.
//!
//! # Which file owns what
//!
//! | file | owns |
//! | --- | --- |
//! | `main.rs` | the binary: the client's commands, else flags to `Config`, logging, the server |
//! | `client/` | the client in the same binary (`lighthouse get`, `put`, `patch`, `delete`, `edit`, `watch`, `lock`, `status`): blocking, over `std::net`, with `http`'s reader; its own map in `client/mod.rs` |
//! | `config.rs` | the command line |
//! | `limits.rs` | every limit and period, unit last, with its reason |
//! | `http/reader.rs` | the push reader of requests (clients) and answers (peers) |
//! | `http/writer.rs` | the heads of answers and of requests to peers; chunk framing |
//! | `http/request.rs`, `answer.rs`, `chunked.rs`, `response.rs` | request heads, answer heads, chunked bodies, `Response` |
//! | `http/cors.rs` | `--cors`: which origins a browser lets in, and the headers that say so |
//! | `http/host.rs` | the `Host` names a node bound to loopback serves (DNS rebinding) |
//! | `core/mod.rs`, `routing.rs` | `Node` (`Shared` and `Option<Coordinated>`, split once per input): requests in, answers and effects out; routing by resource |
//! | `core/transaction.rs`, `lock.rs` | `/lock` and `/update`: the lease, staging, commit, abort. `lock.rs` owns where a transaction is (open, or committing and for whom), private behind its transitions; `transaction.rs` ends every commit, in both modes (landed, failed, lost to a newer store) |
//! | `core/data.rs`, `write.rs` | `/data`: reads; one-request writes (`PUT`, `PATCH`, `DELETE`), preconditions, waiting for the lock |
//! | `core/store.rs` | the store being served and its render cache (reads) |
//! | `core/watch.rs`, `watch/kept.rs` | long-polls and event streams (whole subtrees, or JSON Patches with `?changes`); the recent versions kept to resume them, and the whole first event streams share |
//! | `core/durability.rs` | the flush queue (`DiskQueue`): which snapshot the writer works on next, a local commit's seal; the sequence of a new version; disk errors |
//! | `core/cluster.rs`, `take.rs` | the peer table, gossip, push and pull; taking copies, whole or as a change (`PUT /copy/change`); a client's `PUT /copy` as a restore (coordinated writes) |
//! | `core/joining.rs`, `commit_point.rs` | a node joining its cluster at start (when it serves), and why it does not serve; the commit point in `node.json`, and reads served unconfirmed after a restart |
//! | `core/consensus.rs`, `beats.rs`, `election.rs`, `coordinated.rs` | coordinated writes: their state (`Coordinated`; `Consensus`, private behind its transitions in `consensus.rs`), its start and the jobs it owns; terms, the lease, the node's state on disk; beats sent, answered and followed; standing and voting; `/cluster/*` routing and status; each node's role (`NodeRole`) |
//! | `core/renewal.rs` | a coordinator whose lease lapsed (a pause) renews it before it answers a write |
//! | `core/replicate.rs`, `voter.rs` | a commit made durable on a majority (coordinator; its phase, `InCommit`, private); accepting pushed versions (voter), and the version held but not known committed (`Pending`, the coordinator's own commit too) |
//! | `core/forward.rs`, `membership.rs` | writes sent on to the coordinator; voters added, replaced and removed (guarded), removed members out of every table |
//! | `core/roster.rs`, `node_state.rs` | the roster every version carries (`Coordination`: the cluster's id, the term, the voters and the removed); a node's id, term and vote (`node.json`) |
//! | `core/startup.rs` | how a node starts, from its data directory and flags alone: which snapshot loads, its identity, founding or joining (the server and the simulations both call it) |
//! | `core/messages.rs`, `messages/` | every message peers exchange as a type, encoded and decoded in one place (votes, beats, versions pushed as changes and the answers to pushes, gossip, a peer's `/state`, a copy's small objects; `node.json`'s fields); why a peer is not usable (`PeerProblem`) |
//! | `core/peering.rs` | the boundary of a cluster: the cluster id, write mode and address every peer message carries, and the refusal of a peer of another cluster or mode |
//! | `core/info.rs` | `GET /` and the figures of `/metrics` |
//! | `core/auth.rs`, `grant.rs`, `metrics.rs` | tokens and the cluster key (replaced on SIGHUP); what a token grants (scope, prefixes, the token-file format, the 403s); `/metrics` (and the timing of commits) |
//! | `core/guard.rs` | what no peer sends, refused at the peer endpoints: a browser's marks, terms out of bounds |
//! | `core/jobs.rs`, `pace.rs` | the workers' jobs, who waits for each (`Owner`: `Node::job_done` hands a report to its owner only), the one allocator of job and call ids, and how jobs are carried out; pacing hooks |
//! | `core/value/` | the tree (`mod.rs`), wide objects in chunks (`object.rs`), edits, patches (RFC 7396, RFC 6902), the diff of two versions as an RFC 6902 patch (`diff.rs`), rendering, parsing (general, and the one pass over canonical JSON in `canonical.rs`), the text of unchanged subtrees kept between versions by the workers, so a commit's checksum hashes the store without rendering it (`text_cache.rs`) |
//! | `core/version.rs`, `lineage.rs`, `change.rs` | versions and checksums; a store's recent history; a version as the JSON Patch from the one before (change files, pushes to peers), and made from a pushed change on the decoder thread |
//! | `core/sealed.rs`, `snapshot.rs`, `snapshot_written.rs`, `change_file.rs` | the copy format (peers); the snapshot file format (disk), and loading a file this server wrote in one pass; the change file format (a commit's change, between full snapshots) |
//! | `core/chain.rs`, `chain_load.rs`, `spare.rs` | which file a version gets (a change file while the chain from the newest file is intact, else a full snapshot), compaction's rule; start-up's loading of the newest version whose chain applies; how a file reaches the disk (into a spare file made ahead and `fdatasync`'d, renamed off the commit's path, or the whole cycle) and start-up's placing of spares, through `Files` (the real directory's or the simulation's) |
//! | `core/clock.rs`, `path.rs`, `address.rs`, `rng.rs` | time as a value; request paths, and the query parameters each resource takes (`PARAMETERS`); `HOST:PORT`; the seeded generator |
//! | `shell/event_loop/` | the loop (`mod.rs`: turns, accepting, effects, timers) and serving a connection (`serve.rs`) |
//! | `shell/connection.rs` | a client connection: its phases, input limits and timer |
//! | `shell/peers.rs` | the outbound links to peers |
//! | `shell/buffer.rs` | receive and send buffers from a shared pool |
//! | `shell/transport.rs`, `tls.rs`, `tls_off.rs` | what a connection's bytes travel over: plain TCP, or TLS (rustls, `--features tls`: certificates, their reload on SIGHUP, plain HTTP to the TLS port told to use https://); `tls_off.rs` stands in without the feature |
//! | `shell/workers.rs`, `data_dir.rs` | the worker threads; the data directory (its lock and start-up probe, load, durable writes, retention of whole chains, room made on a full disk; the settler thread of spare files in `data_dir/settler.rs`; its tests in `data_dir/tests.rs`) |
//! | `shell/server.rs`, `sys.rs`, `system_clock.rs`, `logger.rs` | start-up; system calls; the system's clocks (read only here); log lines |
//! | `shell/tokens.rs` | the token files and the cluster key, read at start and on SIGHUP |
//! | `sha1.rs` | SHA-1, with the processor's SHA extensions where it has them |
//! | `ui.rs`, `ui.html` | the page at `/ui` |
//!
//! # Who changes which state
//!
//! Every field of the node's state, the modules that may change it, and how: directly, or only
//! through the methods of its own type (whose fields are private to its module, so the compiler
//! confines them). `tests/architecture.rs` finds every direct write in `src/core/` and fails on one
//! this table does not name. `effects` and `metrics` are outputs any module appends to.
//! `consensus`, `pending`, `commit`, `forwards`, `heard_while_joining`, `dropped_lock`,
//! `lease_waiters` and `point_writes` are fields of `Coordinated` (reached as `self` in its code,
//! as `co` in the shared code handed it); the others are fields of `Shared`.
//!
//! | state | changed only in | how |
//! | --- | --- | --- |
//! | `config` | `auth.rs` | directly |
//! | `store` | `store.rs` | its methods |
//! | `lock` | `transaction.rs` | its methods |
//! | `disk` | `durability.rs` | its methods |
//! | `cluster` | `cluster.rs` | its methods |
//! | `mine` | `transaction.rs` | directly |
//! | `decodes_in_flight` | `take.rs` | directly |
//! | `copy_renders` | `take.rs` | its methods |
//! | `activation` | `joining.rs` | directly |
//! | `heard_while_joining` | `joining.rs` | directly |
//! | `watches` | `watch.rs` | its methods |
//! | `recent_commits` | `transaction.rs` | directly |
//! | `effects` | any | output only: the queue the shell drains; no decision reads it |
//! | `ids` | `jobs.rs` | its methods |
//! | `metrics` | any | output only: counters where things happen, read by `/metrics` alone |
//! | `rng` | `rng.rs` | its methods |
//! | `consensus` | `consensus.rs` | its methods |
//! | `pending` | `voter.rs` | directly |
//! | `commit` | `replicate.rs` | its methods |
//! | `forwards` | `forward.rs` | directly |
//! | `dropped_lock` | `replicate.rs` | directly |
//! | `waiting_writes` | `write.rs` | its methods |
//! | `identity` | `peering.rs` | its methods |
//! | `mismatches_logged` | `peering.rs` | directly |
//! | `identity_unsaved` | `peering.rs` | directly |
//! | `floor` | `none` | directly |
//! | `writes_refused` | `none` | directly |
//! | `last_disk_error` | `durability.rs` | directly |
//! | `clock` | `metrics.rs` | its methods |
//! | `lease_waiters` | `renewal.rs` | directly |
//! | `point_writes` | `commit_point.rs` | directly |
//! | `joining_report_at` | `joining.rs` | directly |
//!
//! Tokens: 0 is the listener, 1 the workers' waker, 2 the signal pipe, 16 and up the client
//! connections, 2^32 and up the peer links. A ticket (`core::Ticket`) names one parked request:
//! a serial number and its connection's slot (`limits.rs` holds these numbers and checks at
//! compile time that they do not overlap).
#![deny(unsafe_code)]

pub mod client;
pub mod config;
pub mod core;
pub mod http;
pub mod limits;
pub mod sha1;
pub mod shell;
pub mod ui;
