//! A coordinator renews a lapsed lease before it refuses a write.
//!
//! The lease lapses when no majority acknowledged a beat for `COORDINATOR_LEASE_MS`: the voters are
//! gone, or this process was paused (SIGSTOP, a stop of the world, a swapped-out page) and sent
//! no beats. After a pause the voters are still there and still promise it: one round of beats
//! gives the lease back within milliseconds. So the first request that needs the lease (the lock,
//! a one-request write) after it lapsed does not answer 503 at once: the coordinator beats at once
//! and parks the request until a majority acknowledges (the lease holds again) or
//! `LEASE_RENEWAL_WAIT_MS` passes (then it is answered as before: 503, no majority). A renewal that
//! failed is not tried again until the lease held once more, so a coordinator cut off from its
//! voters refuses at once, as before. A single voter is its own majority: its lease is renewed
//! by every request (`check_lease` counts its own beat as sent now), and never lapses.

use super::coordinated::Coordinated;
use super::{Reply, Request, Shared, Ticket};
use crate::core::clock::{Deadline, Now};
use crate::http::{Method, OwnedHeaders};
use crate::limits::{LEASE_RENEWAL_WAIT_MS, LEASE_WAITERS_BYTES_MAX, LEASE_WAITERS_MAX};

/// A request parked while the coordinator renews its lease: owned, to be handled again.
#[derive(Debug)]
pub struct LeaseWaiter {
    ticket: Ticket,
    method: Method,
    target: String,
    headers: OwnedHeaders,
    body: Vec<u8>,
    client: Option<std::net::SocketAddr>,
}

impl LeaseWaiter {
    fn of(ticket: Ticket, request: &Request) -> LeaseWaiter {
        LeaseWaiter {
            ticket,
            method: request.method,
            target: request.target.to_string(),
            headers: request.headers.to_owned(),
            body: request.body.to_vec(),
            client: request.client,
        }
    }

    fn request(&self) -> Request<'_> {
        let headers = self.headers.borrowed();
        Request {
            method: self.method,
            target: &self.target,
            headers,
            body: &self.body,
            client: self.client,
            grant: None,
        }
    }
}

impl Coordinated {
    /// Parks a request that needs the lease while the coordinator renews it (starting a renewal
    /// if none was tried since the lease last held); `None`: handle it now (the lease holds, or
    /// cannot be renewed soon, or this node does not coordinate).
    pub(super) fn wait_for_lease(
        &mut self,
        node: &mut Shared,
        now: Now,
        ticket: Ticket,
        request: &Request,
        resource: &str,
    ) -> Option<Reply> {
        let needs_lease = resource == "lock"
            || (resource == "data" && matches!(request.method, Method::Put | Method::Patch | Method::Delete));
        if !needs_lease || !self.consensus.is_coordinator() {
            return None;
        }
        // Renews a single voter's lease, and drops a lapsed one (and the lock it covered).
        self.check_lease(node, now);
        let consensus = &self.consensus;
        if consensus.has_lease(now) {
            return None;
        }
        let leading = consensus.leading().expect("coordinates");
        if !leading.ready || leading.renewal.is_some_and(|until| until.fired(now)) {
            return None;
        }
        let bytes: usize = self.lease_waiters.iter().map(|w| w.body.len()).sum();
        if self.lease_waiters.len() >= LEASE_WAITERS_MAX || bytes + request.body.len() > LEASE_WAITERS_BYTES_MAX {
            return None;
        }
        if leading.renewal.is_none() {
            self.consensus.renewing(Deadline::after(now, LEASE_RENEWAL_WAIT_MS));
            log::info!("the coordinator's lease lapsed (a pause?): beating at once to renew it before answering");
            self.beat(node, now);
        }
        self.lease_waiters.push(LeaseWaiter::of(ticket, request));
        Some(Reply::Later)
    }

    /// Handles the parked requests again once the lease holds, the renewal's time is up, or this
    /// node stopped coordinating.
    pub(super) fn run_lease_waiters(&mut self, node: &mut Shared, now: Now) {
        if self.lease_waiters.is_empty() {
            return;
        }
        let waiting = match self.consensus.role() {
            _ if self.consensus.has_lease(now) => false,
            super::consensus::Role::Coordinator(leading) => leading.renewal.is_some_and(|d| !d.fired(now)),
            _ => false,
        };
        if waiting {
            return;
        }
        for waiter in std::mem::take(&mut self.lease_waiters) {
            match node.handle(Some(self), now, waiter.ticket, &waiter.request()) {
                super::Reply::Now(response) | super::Reply::Stream(response) => node.answer(waiter.ticket, response),
                super::Reply::Later => {}
            }
        }
    }

    /// When the parked requests are answered at the latest.
    pub(super) fn next_lease_waiters_deadline(&self) -> Option<Deadline> {
        if self.lease_waiters.is_empty() {
            return None;
        }
        match self.consensus.role() {
            super::consensus::Role::Coordinator(leading) => leading.renewal,
            _ => Some(Deadline(0)),
        }
    }
}
