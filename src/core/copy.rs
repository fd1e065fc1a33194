//! `/copy`: the whole store with its version, as nodes exchange it.
//!
//! `GET /copy` answers the current store. `PUT /copy` offers one: its body goes to the decoder
//! thread (parsing and hashing a large store would stall the loop), and once checked it replaces
//! the store if, and only if, it is newer. An older or equal copy is ignored; a malformed one or
//! one whose checksum does not match its data is refused with 400 and changes nothing.

use std::sync::Arc;

use log::{info, warn};

use super::{Node, Reply, Request, Ticket, method_not_allowed};
use crate::clock::Now;
use crate::flush::Job;
use crate::http::{Bytes, Method, Response};
use crate::limits::DECODES_IN_FLIGHT_MAX;
use crate::snapshot::{Copy, DecodeError};

impl Node {
    pub(super) fn copy_request(&mut self, _now: Now, ticket: Ticket, request: &Request) -> Reply {
        match request.method {
            Method::Get | Method::Head => Reply::Now(self.copy_response()),
            Method::Put => {
                if self.decoding.len() >= DECODES_IN_FLIGHT_MAX {
                    let busy =
                        Response::error(503, "too many copies being checked; retry").with_header("Retry-After", "1");
                    return Reply::Now(busy);
                }
                let id = self.next_id();
                self.decoding.push((id, ticket));
                self.effects.push(super::Effect::Job(Job::Decode { id, body: request.body.to_vec() }));
                Reply::Later
            }
            _ => Reply::Now(method_not_allowed("GET, HEAD, PUT")),
        }
    }

    /// `{"data": STORE, "version": VERSION}` in compact JSON, rendered once per version.
    fn copy_response(&mut self) -> Response {
        let version = self.store.version();
        let body = match &self.copy_body {
            Some((cached, body)) if *cached == version => body.clone(),
            _ => {
                let mut body = b"{\"data\":".to_vec();
                self.store.root().write_compact(&mut body).expect("writing to a Vec cannot fail");
                body.extend_from_slice(b",\"version\":");
                body.extend_from_slice(version.to_compact().as_bytes());
                body.extend_from_slice(b"}\n");
                let body: Arc<[u8]> = body.into();
                self.copy_body = Some((version, body.clone()));
                body
            }
        };
        Response {
            status: 200,
            headers: Bytes::Static(b"Content-Type: application/json\r\n"),
            body: Bytes::Shared(body),
            close: false,
        }
    }

    /// The decoder thread checked a `PUT /copy` body.
    pub(super) fn copy_decoded(&mut self, now: Now, id: u64, result: Result<Copy, DecodeError>) {
        let Some(position) = self.decoding.iter().position(|(job, _)| *job == id) else {
            unreachable!("a decoded copy was asked for");
        };
        let (_, ticket) = self.decoding.swap_remove(position);
        let response = match result {
            Err(e) => {
                warn!("refused a copy: {e}");
                Response::error(400, &format!("copy refused: {e}"))
            }
            Ok(copy) => {
                self.take_copy(now, copy);
                Response::json(201, self.store.version().to_pretty_line().into_bytes())
            }
        };
        self.answer(ticket, response);
    }

    /// Replaces the store with a checked copy if it is newer. Returns whether it was taken.
    pub(super) fn take_copy(&mut self, now: Now, copy: Copy) -> bool {
        if copy.version <= self.store.version() {
            return false;
        }
        info!("took sequence {} ({}) from a peer", copy.version.sequence, copy.version.checksum);
        if let Some(lock) = &mut self.lock
            && !lock.is_committing()
            && !lock.changed_something()
        {
            // The holder has only read so far: let the transaction see the newest store.
            lock.rebase(copy.version, copy.root.clone());
        }
        let waiting_commit = self.lock.as_ref().and_then(|l| match l.state {
            super::LockState::Committing { ticket, job: None } => Some(ticket),
            _ => None,
        });
        self.store.replace(copy.version, copy.root);
        self.metrics.copies_taken += 1;
        if let Some(ticket) = waiting_commit {
            // The commit had not started writing; it can only lose now.
            let lock = self.lock.as_mut().expect("a waiting commit has its lock");
            lock.state = super::LockState::Open;
            lock.renew(now);
            let response = self.conflict_response();
            self.answer(ticket, response);
        }
        self.pump_disk(now);
        true
    }
}
