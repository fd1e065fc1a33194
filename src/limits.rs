//! Every limit and period of the server in one place, the unit last in each name and the reason
//! beside it. Limits that the command line can change are the `_DEFAULT` ones; the rest are fixed
//! because nobody has needed to change them, and a fixed limit is one less thing to get wrong.

// ---- HTTP requests -------------------------------------------------------------------------------

/// The request line plus all headers. curl and browsers stay far below; a larger head is an
/// attack or a bug, and it answers 431.
pub const REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Header lines in one request head. Real clients send fewer than 20; more answers 431.
pub const REQUEST_HEADERS_COUNT_MAX: usize = 64;
/// Default for `--max-body`: a whole store uploaded in one PUT fits with room to spare.
pub const BODY_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// One chunk-size line of a chunked body, extensions included. Sizes are at most 16 hex digits.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// The trailer section after the last chunk. Trailers are read and dropped.
pub const CHUNK_TRAILER_BYTES_MAX: usize = REQUEST_HEAD_BYTES_MAX;
/// Requests answered for one connection before the loop turns to the others (pipelining).
pub const PIPELINE_REQUESTS_PER_WAKE_MAX: usize = 64;

// ---- Connections ---------------------------------------------------------------------------------

/// Default for `--max-connections`: the benchmark's 10,000 idle connections plus a busy load.
pub const CONNECTIONS_MAX_DEFAULT: usize = 16 * 1024;
/// A ticket (`core::Ticket`, one parked request) is a request serial number above these bits and
/// the connection's slot below them.
pub const TICKET_SLOT_BITS: u32 = 24;
/// The most `--max-connections` may ask for: a connection's slot must fit the bits a ticket keeps
/// for it.
pub const CONNECTIONS_MAX: usize = (1 << TICKET_SLOT_BITS) - 1;
/// Connection `i` has poll token `CONNECTION_TOKEN_BASE + i`; the tokens below are the listener's,
/// the workers' waker's and the signal pipe's.
pub const CONNECTION_TOKEN_BASE: usize = 16;
/// Peer link `i` has poll token `PEER_TOKEN_BASE + i`; client connections stay below it.
pub const PEER_TOKEN_BASE: usize = 1 << 32;
const _: () =
    assert!(CONNECTION_TOKEN_BASE + CONNECTIONS_MAX < PEER_TOKEN_BASE, "client tokens stay below peer tokens");
/// Open files the server needs beside its client connections: the listener, the poller, peer
/// links, snapshot files, the signal pipe. A lower open-files limit is worth a warning.
pub const OPEN_FILES_SPARE: usize = 64;
/// A keep-alive connection with nothing to do is closed after this long.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// A request head must arrive within this long of its first byte.
pub const HEAD_TIMEOUT_MS: u64 = 10_000;
/// A request body must make progress at least this often.
pub const BODY_STALL_TIMEOUT_MS: u64 = 10_000;
/// A client that reads none of its pending answer for this long is closed.
pub const SEND_STALL_TIMEOUT_MS: u64 = 60_000;
/// After an error answer that closes the connection, unread input is drained this long (or up to
/// `LINGER_BYTES_MAX`) so the client sees the answer instead of a reset.
pub const LINGER_MS: u64 = 2_000;
pub const LINGER_BYTES_MAX: usize = 1024 * 1024;

// ---- Event loop budgets --------------------------------------------------------------------------

/// Bytes read from one connection per wake-up, so one fast sender cannot starve the others.
pub const READ_BUDGET_BYTES: usize = 256 * 1024;
/// Bytes written to one connection per wake-up.
pub const WRITE_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// Plaintext a TLS session holds until its handshake is done, and records it holds until the
/// socket takes them (`--features tls`): past it a write waits as on a full socket. rustls's own
/// default; a few records, enough to fill a socket's buffer between two writable events.
pub const TLS_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Connections accepted (and, their request being in, served at once) per wake-up of the listener:
/// a burst of new connections waits its turn behind the ones already open.
pub const ACCEPT_BUDGET: usize = 64;
/// What is read (and dropped) from a connection over `--max-connections` before it is answered
/// 503, so that closing it does not reset the connection before the client reads the answer.
pub const OVER_CAPACITY_SCRATCH_BYTES: usize = 4096;
/// After EMFILE or ENFILE the listener rests this long instead of spinning on the error.
pub const ACCEPT_PAUSE_MS: u64 = 100;
/// The listen backlog, longer than the 128 mio asks for: a burst of connections (a thousand
/// clients starting at once) waits in the queue instead of being dropped and retried a second
/// later. Linux caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;
/// The niceness of the worker threads: when a large store is rendered or hashed on the core the
/// event loop runs on, the loop's answers come first.
pub const WORKER_NICE: i32 = 10;
/// Events taken from the poller per wake-up.
pub const EVENTS_CAPACITY: usize = 1024;

// ---- Buffers -------------------------------------------------------------------------------------

/// The unit a receive or send buffer is taken from the pool in; most requests and small answers fit.
pub const BUFFER_BYTES: usize = 16 * 1024;
/// Buffers kept for reuse. An idle connection owns none, so memory follows activity, not count.
pub const BUFFER_POOL_COUNT_MAX: usize = 256;
/// A buffer that grew past this (a large body) goes back to the allocator, not the pool.
pub const BUFFER_POOL_BYTES_MAX: usize = 64 * 1024;
/// Bodies at least this long are queued by reference (shared) instead of copied into a buffer.
pub const SHARED_BODY_BYTES_MIN: usize = 16 * 1024;
/// Request bodies being received at once, across all connections: each connection may hold up to
/// `--max-body`, so without this bound many slow uploads could hold any amount of memory. A body
/// that would pass it answers 503.
pub const BODIES_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Unsent output above which a connection stops reading new requests until the client catches up.
pub const SEND_BACKLOG_BYTES_MAX: usize = 1024 * 1024;
/// Segments passed to one vectored write.
pub const WRITE_SEGMENTS_MAX: usize = 16;

// ---- The store -----------------------------------------------------------------------------------

/// Nesting of arrays and objects in the store. serde_json refuses input nested deeper than 128,
/// and a snapshot wraps the store in two more levels, so a deeper store could not be reloaded.
pub const STORE_DEPTH_MAX: usize = 100;
const _: () = assert!(STORE_DEPTH_MAX + 2 < 128);
/// Elements per block of the parser's scratch stack (`value/parse.rs`). Large enough (48 MiB of
/// values, 96 MiB of entries) that the allocator maps every block but the first by itself, above
/// glibc's largest mmap threshold (32 MiB), so a block emptied while a large container is moved
/// out goes back to the system at once instead of staying as a hole in the heap (with blocks of
/// 1.5 MiB, a 79 MB array of pairs ended 106 MB larger). Only the pages used are touched.
pub const PARSE_BLOCK_ITEMS: usize = 2 * 1024 * 1024;
const _: () = assert!(PARSE_BLOCK_ITEMS.is_power_of_two(), "a growing vector fills a block exactly");
/// The buffer between rendering a tree and hashing it, for checksums of subtrees: large enough that
/// SHA-1 sees big blocks, small enough to sit in the cache.
pub const HASH_BUFFER_BYTES: usize = 64 * 1024;
/// The largest subtree whose canonical text a worker keeps between versions (`value::TextCache`),
/// so that a commit's checksum hashes kept text instead of rendering the store: small enough
/// that an edit re-renders little (a chunk of a wide object is about 256 entries), large enough
/// that the store is a few thousand pieces and the walk over them costs nothing beside SHA-1.
pub const TEXT_CACHE_UNIT_BYTES_MAX: usize = 64 * 1024;
/// The smallest text kept: a kept piece costs about 100 bytes of bookkeeping, so smaller ones
/// would cost more memory than they save time (their parent's text is kept when it is small enough).
pub const TEXT_CACHE_UNIT_BYTES_MIN: usize = 1024;
const _: () = assert!(TEXT_CACHE_UNIT_BYTES_MIN < TEXT_CACHE_UNIT_BYTES_MAX);
/// Rendered answers kept per version. A miss costs one render, so the bound only protects memory
/// from a client that reads many distinct paths.
pub const RENDER_CACHE_ENTRIES_MAX: usize = 4096;
pub const RENDER_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// `PUT /copy` bodies being checked by the decoder thread at once; more answer 503. Each holds
/// a body of up to `--max-body` bytes, so this bounds their memory.
pub const DECODES_IN_FLIGHT_MAX: usize = 8;
/// Versions remembered in a store's lineage, to tell whether a copy contains this node's commits:
/// 16 hex digits each, 4 KiB in every copy and snapshot. A commit more than this many versions
/// behind the copy that replaces it cannot be told apart (at one commit a second, four minutes).
pub const LINEAGE_VERSIONS_MAX: usize = 256;

// ---- Watching ------------------------------------------------------------------------------------

/// The longest `?wait=` a long-poll may ask for; longer waits are cut to this.
pub const WAIT_S_MAX: u64 = 300;
/// Long-polls and event streams waiting on one node; more answer 503.
pub const WATCHERS_MAX: usize = 65_536;
/// Idle event streams get a comment line this often, so proxies and clients see they are alive.
pub const STREAM_HEARTBEAT_MS: u64 = 15_000;
/// Unsent events above which a slow stream reader is disconnected rather than buffered for. It
/// counts what is queued behind an event the reader is taking: the first event, and an event
/// queued when the reader had taken everything before it, may be of any size (a whole large
/// subtree), since a reader taking it is not falling behind.
pub const STREAM_BACKLOG_BYTES_MAX: usize = 1024 * 1024;
/// Versions kept to resume a stream of changes (`?changes` with `Last-Event-ID`) with a patch,
/// and how long each is kept. A version holds only what later ones do not share with it (an
/// edit's path), but a store replaced whole is held once per version kept: 8 bounds that to 8
/// stores for a minute. A client that returns later gets the whole subtree.
pub const STREAM_RESUME_VERSIONS_MAX: usize = 8;
pub const STREAM_RESUME_MS: u64 = 60_000;

// ---- The lock ------------------------------------------------------------------------------------

/// Default for `--lock-timeout`.
pub const LOCK_TIMEOUT_S_DEFAULT: u64 = 30;
/// The longest lease `PUT /lock?ttl=S` may ask for: a forgotten lock blocks every writer.
pub const LOCK_TTL_S_MAX: u64 = 3600;
/// A commit is remembered by its lock's name this long, so that a client retrying a commit whose
/// answer it lost is told the commit landed (and which version it made)...
pub const RECENT_COMMIT_MS: u64 = 10 * 60_000;
/// ...and at most this many of them.
pub const RECENT_COMMITS_MAX: usize = 64;
/// Lock names are 1 to this many characters of `A-Z a-z 0-9 . _ ~ -`.
pub const LOCK_NAME_BYTES_MAX: usize = 128;
/// A one-request write holds the lock under the name `METHOD /data/path`, cut to this many bytes
/// (then `...`): it is never a lock name a client sends, so it may be longer than one.
pub const WRITE_NAME_BYTES_MAX: usize = 200;
/// A token's label names it in audit lines and in a forwarded request's header: short, like a
/// lock's name.
pub const TOKEN_LABEL_BYTES_MAX: usize = 64;
/// Prefixes one token may have: every request with it compares its path against each.
pub const TOKEN_PREFIXES_MAX: usize = 64;
/// A duplicate key named in a refusal is cut to this many bytes (then `...`): enough to find it
/// in the body, while a key as large as the body does not come back whole in a one-line error.
pub const SHOWN_KEY_BYTES_MAX: usize = 200;

// ---- Browsers ----------------------------------------------------------------------------------

/// Origins `--cors` may list.
pub const CORS_ORIGINS_MAX: usize = 64;
/// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`).
pub const CORS_MAX_AGE_S: u32 = 600;

// ---- Disk ----------------------------------------------------------------------------------------

/// Default for `--rm-limit`: snapshots older than this are removed (never the newest valid one).
pub const RM_LIMIT_DAYS_DEFAULT: f64 = 7.0;
/// Default for `--keep-snapshots`: every version is a whole-store file, so disk use is about this
/// many times the store; twenty versions leave room to look back without filling a disk.
pub const SNAPSHOTS_KEPT_DEFAULT: usize = 20;
/// The most `--keep-snapshots` may ask for; the writer keeps the names of the files in memory.
pub const SNAPSHOTS_KEPT_MAX: usize = 1_000_000;
/// The highest sequence start-up believes a damaged file's last bytes: past it (2^53, a commit a
/// microsecond for 285 years, and where JavaScript numbers lose precision) the number is damage,
/// and new versions are not numbered after it (they would run out of sequences).
pub const SEQUENCE_PLAUSIBLE_MAX: u64 = 1 << 53;
/// Snapshot files kept when the disk is full and older ones are removed to make room: the
/// newest, and the one before it (coordinated mode's committed version beside a pending one; a
/// local commit that lost to a newer store has its file removed).
pub const SNAPSHOTS_KEPT_WHEN_FULL: usize = 2;
/// Spare files the writer keeps (`core::spare`): empty files whose directory entries are durable,
/// so a commit's file is written into one and `fdatasync`'d (about 0.18 ms on ext4) instead of
/// made new (temporary file, fsync, rename, directory fsync: about 0.6 ms). The writer renames
/// the used ones and makes new ones under one journal commit when it is idle or has none left,
/// so a run of back-to-back commits waits for one of those per this many commits. Measured with
/// 4, 8 and 16 on a disk shared with other work (one-request writes, median): 16 waited least;
/// an empty file costs an inode and no data.
pub const SPARE_FILES: usize = 16;
/// The writer renames used spares and makes new ones once no job has come for this long (or at
/// once when none is left): a commit that arrives meanwhile waits behind a journal commit, so the
/// writer waits for a pause longer than a client's between two writes.
pub const SPARE_SETTLE_IDLE_MS: u64 = 10;
/// The writer hands a settle to the settler thread once this many spares or fewer are ready:
/// the other half carries the commits that come while it runs (a settle takes a few
/// milliseconds; a commit into a spare about half a millisecond), so none waits for it.
pub const SPARE_SETTLE_AT_READY: usize = SPARE_FILES / 2;
/// A snapshot write that failed in the background (a copy taken from a peer, a table change) is
/// tried again after this long, never in a tight loop.
pub const PERSIST_RETRY_MS: u64 = 1_000;
/// The workers render, hash and write a large store in pieces of this size and yield the core
/// between them, so that an event loop sharing the core waits for a piece, not a scheduler tick.
pub const PACE_PIECE_BYTES: usize = 256 * 1024;
/// Loading a store shares the node of a small container of scalars with every later one of the
/// same text (`core::value::canonical`): containers up to this many bytes of JSON are looked up...
pub const SHARED_TEXT_BYTES_MAX: usize = 64;
/// ...and at most this many distinct ones are remembered, so the table stays small (about 4 MiB
/// at most) whatever the store holds.
pub const SHARED_NODES_MAX: usize = 65_536;

// ---- Cluster -------------------------------------------------------------------------------------

/// Peers in the table; addresses learned by gossip past this are ignored, a bound against a
/// flood of made-up addresses.
pub const PEERS_MAX: usize = 64;
/// How often a node syncs with each peer, give or take the jitter (so nodes do not march in step).
pub const SYNC_PERIOD_MS: u64 = 500;
pub const SYNC_JITTER_MS: u64 = 100;
const _: () = assert!(SYNC_JITTER_MS < SYNC_PERIOD_MS);
/// An address in the table that was never reached this long after it joined, and is not one of
/// this node's `--seeds`, is forgotten: it never was a member.
pub const PEER_UNREACHED_FORGET_MS: u64 = 30_000;
/// A connection to a peer must be established within this long.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// A peer that sends no byte of an awaited answer for this long is given up on.
pub const PEER_RESPONSE_STALL_MS: u64 = 3_000;
/// Requests written to one peer connection before their answers arrive (pipelined).
pub const PEER_IN_FLIGHT_MAX: usize = 8;
/// Requests waiting for one peer connection; more fail at once. Writes forwarded to the
/// coordinator queue here, so it takes a burst of clients (100 at once, say) without refusing.
pub const PEER_QUEUE_MAX: usize = 256;
/// After a failed connection, the first wait before the next attempt; it doubles up to the cap.
pub const PEER_BACKOFF_MIN_MS: u64 = 100;
pub const PEER_BACKOFF_MAX_MS: u64 = 5_000;

// ---- Coordinated writes -------------------------------------------------------------------------

/// L: how long a voter's promise to a coordinator lasts from the moment it hears from it. While it
/// lasts the voter votes for nobody else, so a coordinator may grant the lock on its lease.
pub const LEASE_MS: u64 = 2_000;
/// rho: the largest difference between the rates of two nodes' monotonic clocks assumed, in
/// thousandths (5%).
pub const CLOCK_DRIFT_PER_MILLE: u64 = 50;
/// P: the longest pause of a process assumed (a stop of the world, a swapped-out page, SIGSTOP).
pub const PAUSE_MAX_MS: u64 = 500;
/// The coordinator's lease, from the send time of a beat a majority acknowledged:
/// L * (1 - rho) / (1 + rho) - P, about 1.31 s. Past it, it grants no lock and drops the held one.
pub const COORDINATOR_LEASE_MS: u64 =
    LEASE_MS * (1000 - CLOCK_DRIFT_PER_MILLE) / (1000 + CLOCK_DRIFT_PER_MILLE) - PAUSE_MAX_MS;
const _: () = assert!(COORDINATOR_LEASE_MS > 4 * BEAT_MS, "several beats fit in a lease");
/// The coordinator beats (its term, the committed version) to every member this often; a beat
/// renews the voters' promises and tells followers which version to serve.
pub const BEAT_MS: u64 = 250;
/// A voter that hears no beat for this long (plus its stagger) stands for election: after its
/// promise has run out, so the other voters are free to vote too.
pub const ELECTION_TIMEOUT_MS: u64 = LEASE_MS + 100;
/// Voters stand one after another in the order of their addresses, this far apart, so that
/// elections rarely split; the order decides nothing else.
pub const ELECTION_STAGGER_MS: u64 = 150;
/// A voter told by the coordinator's last beat that it left the voters stands this long after
/// (plus its stagger): the answers the coordinator sent with that beat (to requests forwarded to
/// it, the removal among them) arrive first, since standing abandons forwarded requests.
pub const HANDOVER_GRACE_MS: u64 = 100;
const _: () = assert!(HANDOVER_GRACE_MS < ELECTION_STAGGER_MS, "far sooner than an election after a crash");
/// A candidate without a majority this long after it asked stands again, in a new term.
pub const ELECTION_RETRY_MS: u64 = 400;
/// A coordinator whose lease lapsed (it was paused, say) beats at once and holds the first
/// request that needs the lease this long for a majority to answer: voters that are up answer a
/// beat in milliseconds; past it the request is refused as it would have been at once.
pub const LEASE_RENEWAL_WAIT_MS: u64 = 2 * BEAT_MS;
const _: () = assert!(LEASE_RENEWAL_WAIT_MS < FORWARD_TIMEOUT_MS, "a forwarded request is answered first");
/// Requests parked while the lease is renewed, on one node; more are refused at once.
pub const LEASE_WAITERS_MAX: usize = 1_024;
/// Bytes of the bodies of the requests parked while the lease is renewed.
pub const LEASE_WAITERS_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The commit point (the newest version a node knows committed) is written to `node.json` at
/// most this often: at once after a quiet spell, so a restart serves the last commit; under
/// steady writes one small write a second beside the snapshot each commit writes.
pub const COMMIT_POINT_SAVE_MS: u64 = 1_000;
/// A commit not durable on a majority of voters this long after its version was sealed (the
/// wait for the voters; the seal is the coordinator's own work) answers 504 (outcome unknown); it
/// may still land later. Not for a single voter: its commit ends with its
/// own write, however long a large store takes.
pub const COMMIT_TIMEOUT_MS: u64 = 1_500;
/// ...plus this long per MiB of the store the commit makes: every node hashes the whole store
/// (its checksum), the disks write it, and a voter that lacks the change's base receives it
/// whole. 125 ms per MiB is 8 MiB/s, well below a slow cloud volume's or a shared gigabit link's
/// rate, so a `PUT` of tens of MB answers 200 or a clear error, never 504 for being large (a 30
/// MB one gets 5.3 s). A forwarded write's wait grows the same way (`commit_allowance_ms`).
pub const COMMIT_TIMEOUT_PER_MIB_MS: u64 = 125;

/// What a commit's waits add for a store of `bytes` (`COMMIT_TIMEOUT_PER_MIB_MS`), in ms.
pub const fn commit_allowance_ms(bytes: u64) -> u64 {
    bytes.saturating_mul(COMMIT_TIMEOUT_PER_MIB_MS) / (1 << 20)
}
/// A request forwarded to the coordinator and not answered this long after answers 503 (a commit:
/// 504, outcome unknown).
pub const FORWARD_TIMEOUT_MS: u64 = 2_000;
const _: () = assert!(COMMIT_TIMEOUT_MS < FORWARD_TIMEOUT_MS, "the coordinator answers a commit first");
/// The highest term a node takes from a peer, a copy or a file: 2^53, the largest integer every
/// JSON reader holds exactly (a JavaScript page, `jq`). An honest cluster raises its term by one
/// per election, and would need an election a millisecond for 285,000 years to get there, so a
/// term above it is forged or corrupt; and a node's own `term + 1` can never overflow.
pub const TERM_MAX: u64 = 1 << 53;
/// A node that belongs to a cluster refuses (and logs, once) a term more than this far beyond its
/// own. Pre-vote keeps a node cut off from a majority from raising its term while it is away, so
/// an honest cluster's term moves by one per election, a few a day: a node away for years of
/// them still catches up. A forged term must stay this close, so running a cluster's terms out to
/// `TERM_MAX` takes 2^33 forged messages rather than one. A node that never joined a cluster (a
/// new learner, at term 0) takes any term up to `TERM_MAX`: it must learn the cluster's.
pub const TERM_JUMP_MAX: u64 = 1 << 20;
const _: () = assert!(TERM_JUMP_MAX < TERM_MAX && TERM_MAX < u64::MAX / 2, "terms never overflow");
/// `?min-version=N` without `?wait=` waits at most this long for the node to hold sequence N.
pub const MIN_VERSION_WAIT_MS_DEFAULT: u64 = 5_000;
/// Peers of another cluster or write mode remembered as already logged: an error is logged once
/// per peer, and a misconfigured fleet stays far below this.
pub const FOREIGN_PEERS_LOGGED_MAX: usize = 64;
/// The last bytes of a snapshot file read to order files by the (term, sequence) they hold: the
/// lineage (4 KiB), the version and the coordination (voters, removed ids) fit with room to spare.
pub const SNAPSHOT_TAIL_PEEK_BYTES: usize = 64 * 1024;

/// A file read at start-up at least this large is read into memory advised to use huge pages
/// (`shell::sys::read_file`): below it the page faults saved are too few to matter.
pub const HUGE_PAGE_READ_BYTES_MIN: usize = 4 * 1024 * 1024;
/// Removed members remembered in the cluster's configuration, so they are never promoted again.
pub const REMOVED_MEMBERS_MAX: usize = 64;
/// Requests forwarded to the coordinator and waiting for its answer, on one node.
pub const FORWARDS_MAX: usize = 1_024;
/// A one-request write (`PUT /data/x`) waits this long for the lock before answering 409: long
/// enough for the writes before it to commit, short enough for a script to notice a held lock.
pub const WRITE_WAIT_MS: u64 = 2_000;
/// One-request writes waiting for the lock; more answer 503 at once.
pub const WRITES_WAITING_MAX: usize = 1_024;
/// Bytes of the bodies of the writes waiting for the lock (each holds its parsed value).
pub const WRITES_WAITING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Operations in one JSON Patch: each copies the arrays and objects on its path (until wide
/// objects are persistent maps), all on the loop.
pub const PATCH_OPERATIONS_MAX: usize = 1_000;
/// Values one JSON Patch may copy (`copy` operations, counted over what each copies): a copy of
/// a copy doubles, so a 1 KB patch could otherwise make a store of gigabytes.
pub const PATCH_COPIED_VALUES_MAX: usize = 1_000_000;
/// A forwarded one-request write may wait for the lock before its commit starts.
pub const FORWARD_WRITE_TIMEOUT_MS: u64 = WRITE_WAIT_MS + FORWARD_TIMEOUT_MS;

/// Default for `--bootstrap-limit`: the longest a starting node stays inactive.
pub const BOOTSTRAP_LIMIT_S_DEFAULT: u64 = 120;
/// The longest `--bootstrap-limit` may be: a day.
pub const BOOTSTRAP_LIMIT_S_MAX: u64 = 86_400;
/// A node of coordinated writes that has not joined its cluster yet logs why this often (no seed
/// answers, no majority of voters, data of local writes): often enough to be seen in a log that
/// is watched, rarely enough not to fill one that is not.
pub const JOINING_REPORT_MS: u64 = 30_000;
/// The `Retry-After` an inactive node answers `/data` with.
pub const INACTIVE_RETRY_AFTER_S: u64 = 1;

/// Operations in one change (`core::change`: a commit as the JSON Patch from the version before,
/// in change files and pushes to voters). A commit whose diff has more is written and sent as
/// the whole store: applying each operation copies its path, and past this many the whole store
/// is cheaper to read than the change.
pub const CHANGE_OPERATIONS_MAX: usize = 100_000;
/// Change files since the last full snapshot after which the flush queue asks the writer, when it
/// is idle, for a full snapshot of the served store (compaction, off the commit's path): start-up
/// applies every change file of the chain, and a thousand small patches cost a few milliseconds.
pub const CHANGE_CHAIN_COMPACT_COMMITS: u64 = 1_000;
/// Bytes of patches since the last full snapshot below which the queue never asks for one, however
/// small the store: in a store of a few hundred bytes every change would be followed by a full
/// snapshot, a second file and fsync per commit, for nothing.
pub const CHANGE_CHAIN_COMPACT_BYTES_MIN: u64 = 64 * 1024;
/// Change files since the last full snapshot past which a commit is written as a full snapshot
/// whatever the queue does: a writer never idle must not grow a chain start-up takes long to apply.
pub const CHANGE_CHAIN_COMMITS_MAX: u64 = 10_000;

// ---- The client (`lighthouse get|put|...|watch|lock|status`) -----------------------------------

/// How long the client tries to connect before it says the server cannot be reached (exit 3): a
/// node on a LAN answers in milliseconds; a dropped SYN is retried by the kernel within this.
pub const CLIENT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long the client waits for an answer: a forwarded write answers within 4 s
/// (`FORWARD_WRITE_TIMEOUT_MS`), and a commit's disk write within a few more.
pub const CLIENT_ANSWER_TIMEOUT_MS: u64 = 30_000;
const _: () = assert!(CLIENT_ANSWER_TIMEOUT_MS > FORWARD_WRITE_TIMEOUT_MS * 2, "a forwarded write answers first");
/// The largest answer the client reads into memory: a whole 100 MB store fits with room.
pub const CLIENT_ANSWER_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// `watch` takes a stream as dead after this long without a byte: the server sends a comment
/// every `STREAM_HEARTBEAT_MS`, so silence this long means the connection is gone.
pub const WATCH_SILENCE_MS: u64 = 3 * STREAM_HEARTBEAT_MS;
/// `watch`'s first wait before reconnecting to a server that is down, doubled on every failure...
pub const WATCH_BACKOFF_MS_MIN: u64 = 100;
/// ...up to this: a restarted server is followed within seconds, and a dead one costs one
/// connection attempt every few seconds.
pub const WATCH_BACKOFF_MS_MAX: u64 = 5_000;
const _: () = assert!(WATCH_BACKOFF_MS_MIN < WATCH_BACKOFF_MS_MAX, "the backoff grows");
/// `lock NAME -- CMD` renews its lease this many times per lease, so one lost renewal is not a lapse.
pub const LOCK_RENEWALS_PER_LEASE: u64 = 3;
