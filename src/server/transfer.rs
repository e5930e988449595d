//! Driving data channels: the turn budget, bandwidth limits (the throttle module's
//! `BandwidthPool` decides, the server pauses and wakes), and handing data events to the
//! owning session.

use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::time::Instant;

use crate::control::session::{DataFailure, TransferError};
use crate::data::DataEvent;
use crate::stats::DataConnFailure;
use crate::stats::ServerStats;
use crate::throttle::{Allowance, BandwidthPool, Limits, Way};

use super::action::connect_failure;
use super::shared::Shared;
use super::{Channel, Entry, FtpServer};

/// The data connection failure an event reports, if it reports one.
fn failure(event: &DataEvent) -> Option<DataConnFailure> {
    match event {
        DataEvent::Failed(DataFailure::AcceptTimeout) => Some(DataConnFailure::AcceptTimeout),
        DataEvent::Failed(DataFailure::ConnectTimeout) => Some(DataConnFailure::ConnectTimeout),
        DataEvent::Failed(DataFailure::ConnectFailed(e)) => Some(connect_failure(e)),
        DataEvent::Failed(DataFailure::ForeignPeer(_)) => Some(DataConnFailure::ForeignPeer),
        // The server's own shortage (descriptors): worth an alert of its own.
        DataEvent::Failed(DataFailure::AcceptFailed(_)) => Some(DataConnFailure::AcceptError),
        DataEvent::Done(_, Err(TransferError::Connection(_))) => Some(DataConnFailure::Reset),
        DataEvent::Done(_, Err(TransferError::Stalled)) => Some(DataConnFailure::Stalled),
        DataEvent::Connected | DataEvent::Done(..) => None,
    }
}

/// The bandwidth pool a transfer in direction `way` of `user` (when limited) draws on: the
/// group's, locked, when the server's limit (`max_rate`) or a user's applies to it; else
/// the reactor's own, which holds no bucket, so the turns of unlimited transfers take no
/// lock.
fn pool<'a>(
    max_rate: Limits,
    way: Way,
    user: Option<&str>,
    group: &'a Shared,
    own: &'a mut BandwidthPool,
    stats: &ServerStats,
) -> PoolGuard<'a> {
    if max_rate.get(way) > 0 || user.is_some() {
        PoolGuard::Shared(group.bandwidth.lock(stats))
    } else {
        PoolGuard::Own(own)
    }
}

enum PoolGuard<'a> {
    Shared(MutexGuard<'a, BandwidthPool>),
    Own(&'a mut BandwidthPool),
}

impl Deref for PoolGuard<'_> {
    type Target = BandwidthPool;
    fn deref(&self) -> &BandwidthPool {
        match self {
            PoolGuard::Shared(g) => g,
            PoolGuard::Own(p) => p,
        }
    }
}

impl DerefMut for PoolGuard<'_> {
    fn deref_mut(&mut self) -> &mut BandwidthPool {
        match self {
            PoolGuard::Shared(g) => g,
            PoolGuard::Own(p) => p,
        }
    }
}

/// Bytes a data channel may move per turn before others get theirs.
const TURN_BUDGET: usize = 4 << 20;

impl FtpServer {
    /// The user whose limits apply to transfers of session `owner`, if any.
    pub(super) fn limited_user(&self, owner: usize) -> Option<String> {
        if self.config.user_limits.is_empty() {
            return None;
        }
        match self.channels.get(owner) {
            Some(Entry {
                chan: Channel::Control(c),
                ..
            }) => c
                .username()
                .filter(|u| self.config.user_limits.contains_key(*u))
                .map(str::to_string),
            _ => None,
        }
    }

    /// What data channel `key` may move this turn ([`BandwidthPool::allowance`]).
    pub(super) fn allowance(
        &mut self,
        key: usize,
        way: Way,
        user: Option<&str>,
        now: Instant,
    ) -> Option<Allowance> {
        let (own, remaining) = match self.channels.get_mut(key) {
            Some(Entry {
                chan: Channel::Data(dc),
                ..
            }) => {
                let remaining = dc.remaining();
                (dc.throttle_mut(way), remaining)
            }
            _ => (None, None),
        };
        let (shared, stats) = (&self.shared, &self.stats);
        let mut pool = pool(
            self.config.max_rate,
            way,
            user,
            shared,
            &mut self.unshared,
            stats,
        );
        pool.allowance(own, way, user, remaining, now)
    }

    pub(super) fn pause_data(&mut self, key: usize, until: Instant, now: Instant) {
        let Some(token) = self.tokens.token(key) else {
            return;
        };
        if let (
            Some(Entry {
                chan: Channel::Data(dc),
                ..
            }),
            Some(reg),
        ) = (self.channels.get_mut(key), &self.registry)
        {
            dc.pause(until, reg, token);
        }
        self.sync_timer(key, now);
    }

    pub(super) fn drive_data(&mut self, key: usize, now: Instant) {
        let Some(token) = self.tokens.token(key) else {
            return;
        };
        let (owner, way, connected) = match self.data(key) {
            Some(dc) => {
                if dc.paused_until().is_some_and(|t| t > now) {
                    // Waiting for bandwidth; the wake-up timer drives it.
                    return;
                }
                (dc.owner, dc.way(), dc.is_connected())
            }
            _ => return,
        };
        let user = way.and_then(|_| self.limited_user(owner));
        let mut budget = TURN_BUDGET;
        let mut turn_end = None;
        if let Some(way) = way {
            if let Some(Entry {
                chan: Channel::Data(dc),
                ..
            }) = self.channels.get_mut(key)
            {
                if dc.share.is_none() {
                    let user = user.as_deref();
                    let (shared, stats) = (&self.shared, &self.stats);
                    let own = &mut self.unshared;
                    let mut pool = pool(self.config.max_rate, way, user, shared, own, stats);
                    dc.share = pool.join(way, user).map(Box::new);
                }
            }
            if let Some(a) = self.allowance(key, way, user.as_deref(), now) {
                if a.budget == 0 && connected {
                    self.pause_data(key, a.wake, now);
                    return;
                }
                budget = budget.min(usize::try_from(a.budget).unwrap_or(usize::MAX));
                if a.shared_cap {
                    turn_end = Some(a.turn_end);
                }
            }
        }
        let Some(Entry {
            chan: Channel::Data(dc),
            ..
        }) = self.channels.get_mut(key)
        else {
            return;
        };
        let Some(reg) = &self.registry else { return };
        let mut events = Vec::new();
        let before = dc.bytes().unwrap_or(0);
        let again = dc.drive(now, reg, token, budget, &mut self.upload_buf, &mut events);
        let after = dc.bytes().or_else(|| {
            events.iter().find_map(|e| match e {
                DataEvent::Done(b, _) => Some(*b),
                _ => None,
            })
        });
        let owner = dc.owner;
        let piece = dc.take_piece(crate::control::session::request::next_id);
        let moved = after.unwrap_or(before).saturating_sub(before);
        let mut paused = false;
        if let Some(way) = way {
            if moved > 0 {
                let own = match self.channels.get_mut(key) {
                    Some(Entry {
                        chan: Channel::Data(dc),
                        ..
                    }) => dc.throttle_mut(way),
                    _ => None,
                };
                let user = user.as_deref();
                let (shared, stats) = (&self.shared, &self.stats);
                let mut pool = pool(
                    self.config.max_rate,
                    way,
                    user,
                    shared,
                    &mut self.unshared,
                    stats,
                );
                pool.consume(own, way, user, moved, now);
            }
            if again {
                match (turn_end, self.allowance(key, way, user.as_deref(), now)) {
                    // Took its share of a shared bucket: the others' turn.
                    (Some(end), _) => {
                        self.pause_data(key, end, now);
                        paused = true;
                    }
                    (None, Some(a)) if a.budget == 0 => {
                        self.pause_data(key, a.wake, now);
                        paused = true;
                    }
                    _ => {}
                }
            }
        }
        if again && !paused {
            self.enqueue(key);
        }
        if let Some((id, piece)) = piece {
            self.make_piece(key, id, piece, now);
        }
        self.deliver(key, owner, events, now);
    }

    /// Hands data events to the owning session, removes a finished data channel and lets
    /// the control channel answer. A connection the channel held open after a TLS failure
    /// is closed only after that answer (the 522) is written.
    pub(super) fn deliver(
        &mut self,
        key: usize,
        owner: usize,
        events: Vec<DataEvent>,
        now: Instant,
    ) {
        for kind in events.iter().filter_map(failure) {
            self.stats.data_failed(kind);
        }
        let finished = self.data(key).is_some_and(|dc| dc.is_finished());
        let held = if finished {
            self.data_mut(key).and_then(|dc| dc.take_held())
        } else {
            None
        };
        if finished {
            self.remove(key);
            if let Some(c) = self.control_mut(owner) {
                if c.data() == Some(key) {
                    c.set_data(None);
                }
            }
        } else {
            self.sync_timer(key, now);
        }
        if !events.is_empty() {
            if let Some(c) = self.control_mut(owner) {
                c.handle_data_events(now, events);
                self.drive_control(owner, now);
            }
        }
        drop(held);
    }
}
