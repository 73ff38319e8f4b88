//! The write path: `append`, `append_batch` and the two-step enqueue.
//!
//! Kept to the bare minimum per record: a coarse clock read (before the lock),
//! then under the lock the frame encoded into the write buffer (CRC included)
//! and its offset pushed to the active segment's index; no allocation, no
//! syscall. A batch is pushed under one lock hold, so it is never split across
//! segments. No file I/O runs here: a full buffer ([`HANDOFF_AT`] bytes) is
//! handed to the sync thread (`crate::sync`), which writes it, as it runs every
//! fsync and segment roll; an append waits (asynchronously) only for an fsync
//! its policy asks for, a roll, or when [`MAX_UNWRITTEN`] bytes are not yet
//! written (the sync thread has fallen behind, e.g. under dirty-page
//! throttling).

use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::Seq;
use crate::clock;
use crate::error::StorageError;
use crate::frame::{BATCH_CONTINUES, HEADER_LEN};

use super::Log;
#[cfg(doc)]
use super::memory::{HANDOFF_AT, MAX_UNWRITTEN};
use super::state::{Room, State};

/// Rewrites one payload in place once its seq and timestamp are known.
type Fill<'a> = dyn FnMut(Seq, u64, &mut [u8]) + 'a;

/// A batch put in the log by [`Log::try_enqueue_batch_with`], not yet known durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "wait_durable tells when the batch is durable"]
pub struct Enqueued {
    /// The seqs the records got.
    pub seqs: RangeInclusive<Seq>,
    /// The timestamp every record of the batch got.
    pub timestamp: u64,
    /// Whether the policy wants an fsync before acknowledging.
    sync: bool,
}

/// What [`Log::try_enqueue_batch_with`] did.
#[derive(Debug)]
#[must_use]
pub enum Enqueue {
    /// The batch is in the log.
    Done(Enqueued),
    /// The batch cannot go in yet: the active segment is full and being
    /// rolled, or the records not yet written to the OS are at their bound (1
    /// MiB, see [`FsyncPolicy`](crate::FsyncPolicy)). Wait, then try again.
    Rolling(RollWait),
}

/// The end of a segment roll, or of a write of the log's buffers, to wait
/// for before enqueueing again.
#[derive(Debug)]
pub struct RollWait(Wait);

#[derive(Debug)]
enum Wait {
    Roll(watch::Receiver<crate::sync::Status>),
    Write(watch::Receiver<u64>),
}

impl RollWait {
    /// Waits until the roll (or a write) is done, or the log is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn wait(self) {
        match self.0 {
            Wait::Roll(mut roll) => {
                let _ = roll.changed().await;
            }
            Wait::Write(mut write) => {
                let _ = write.changed().await;
            }
        }
    }
}

impl Log {
    /// Appends one record and returns its seq. Under [`FsyncPolicy::Always`](crate::FsyncPolicy::Always) it
    /// returns once the record is durable (under `EveryN(n)`, the append that
    /// completes the n-th unsynced record does). Must be called within a tokio
    /// runtime. It never blocks on file I/O: writes, fsyncs and segment rolls
    /// run on the log's sync thread, which the append awaits when its policy
    /// asks for an fsync, when the segment is being rolled, or when 1 MiB of
    /// frames are not yet written to the OS.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves the log working and
    /// consistent; the record is then either wholly in the log (appended, and
    /// made durable like any other record, but its seq is not returned) or not
    /// in it at all (the drop came while the append waited for a segment roll
    /// or a write).
    /// A caller that must know which reads [`Log::last_seq`] or the records.
    pub async fn append(&self, payload: &[u8]) -> Result<Seq, StorageError> {
        self.check_payload(payload)?;
        self.inner.ensure_syncer()?;
        let incoming = (HEADER_LEN + payload.len()) as u64;
        let (seq, sync, wake) = loop {
            let roll = {
                let now = clock::now_ms();
                let mut st = self.inner.state.lock();
                st.writable()?;
                match self.room(&mut st, incoming) {
                    None => {
                        let seq = st.next_seq();
                        let timestamp = st.timestamp(now);
                        st.push(seq, timestamp, 0, payload);
                        self.inner.last.store(seq, Ordering::Release);
                        let sync = self.after_append(&mut st);
                        break (seq, sync, self.inner.tails_waiting());
                    }
                    Some(roll) => roll,
                }
            };
            // The sync thread is rolling the segment or writing: wait, then
            // try again.
            roll.wait().await;
        };
        if wake {
            self.inner.appended.notify_waiters();
        }
        if sync {
            self.inner.sync_to(seq).await?;
        }
        Ok(seq)
    }

    /// Appends several records as one batch: after a crash, all of them are in
    /// the log or none is. Returns their seqs. Waits for durability like
    /// [`Log::append`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Log::append`]: after a drop the whole batch is in the log or
    /// none of it is.
    pub async fn append_batch<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
    ) -> Result<RangeInclusive<Seq>, StorageError> {
        let enqueued = loop {
            match self.enqueue(payloads, None)? {
                Enqueue::Done(enqueued) => break enqueued,
                Enqueue::Rolling(roll) => roll.wait().await,
            }
        };
        self.wait_durable(&enqueued).await?;
        Ok(enqueued.seqs)
    }

    /// The first, synchronous half of [`append_batch`](Self::append_batch): puts
    /// the batch in the log (readable and tailed at once) without waiting for
    /// durability, or says that the active segment is full and being rolled
    /// ([`Enqueue::Rolling`]: wait for it, then call again).
    ///
    /// `fill(seq, timestamp, payload)` is called for each payload under the
    /// log's lock, once its seq and timestamp are known, and may rewrite the
    /// payload's bytes in place (a hash chain over seqs and timestamps); it
    /// must not change their length. Then [`wait_durable`](Self::wait_durable)
    /// waits for what the fsync policy promises. A caller that never waits
    /// still has its batch appended (durable at the next sync).
    pub fn try_enqueue_batch_with<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        mut fill: impl FnMut(Seq, u64, &mut [u8]),
    ) -> Result<Enqueue, StorageError> {
        self.enqueue(payloads, Some(&mut fill))
    }

    /// [`try_enqueue_batch_with`](Self::try_enqueue_batch_with) without
    /// rewriting the payloads.
    pub fn try_enqueue_batch<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
    ) -> Result<Enqueue, StorageError> {
        self.enqueue(payloads, None)
    }

    fn enqueue<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        mut fill: Option<&mut Fill<'_>>,
    ) -> Result<Enqueue, StorageError> {
        if payloads.is_empty() {
            return Err(StorageError::EmptyBatch);
        }
        self.inner.ensure_syncer()?;
        let mut bytes = 0u64;
        for payload in payloads {
            self.check_payload(payload.as_ref())?;
            bytes += (HEADER_LEN + payload.as_ref().len()) as u64;
        }
        let mut scratch = Vec::new();
        let (enqueued, wake) = {
            let now = clock::now_ms();
            let mut st = self.inner.state.lock();
            st.writable()?;
            if let Some(roll) = self.room(&mut st, bytes) {
                return Ok(Enqueue::Rolling(roll));
            }
            let (first, timestamp) = (st.next_seq(), st.timestamp(now));
            let last_index = payloads.len() - 1;
            for (i, payload) in payloads.iter().enumerate() {
                let flags = if i < last_index { BATCH_CONTINUES } else { 0 };
                let seq = first + i as u64;
                match fill.as_mut() {
                    Some(fill) => {
                        scratch.clear();
                        scratch.extend_from_slice(payload.as_ref());
                        fill(seq, timestamp, &mut scratch);
                        st.push(seq, timestamp, flags, &scratch);
                    }
                    None => st.push(seq, timestamp, flags, payload.as_ref()),
                }
            }
            self.inner
                .last
                .store(first + last_index as u64, Ordering::Release);
            let sync = self.after_append(&mut st);
            let enqueued = Enqueued {
                seqs: first..=first + last_index as u64,
                timestamp,
                sync,
            };
            (enqueued, self.inner.tails_waiting())
        };
        if wake {
            self.inner.appended.notify_waiters();
        }
        Ok(Enqueue::Done(enqueued))
    }

    /// Waits until `enqueued` is as durable as the fsync policy promises an
    /// acknowledged append to be (at once for every policy but those that fsync).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves the batch appended; it becomes
    /// durable with a later sync.
    pub async fn wait_durable(&self, enqueued: &Enqueued) -> Result<(), StorageError> {
        if enqueued.sync {
            self.inner.sync_to(*enqueued.seqs.end()).await?;
        }
        Ok(())
    }

    #[inline]
    fn check_payload(&self, payload: &[u8]) -> Result<(), StorageError> {
        let max = self.inner.options.max_record_size;
        match payload.len() {
            0 => Err(StorageError::EmptyPayload),
            len if len > max => Err(StorageError::PayloadTooLarge { len, max }),
            _ => Ok(()),
        }
    }

    /// Hands a full buffer to the sync thread (no I/O here); says whether the
    /// append must wait for an fsync.
    #[inline]
    fn after_append(&self, st: &mut State) -> bool {
        if st.hand_off_if_full() {
            self.inner.sync.request_write();
        }
        let sync = st.unsynced_reach(self.inner.options.fsync.sync_after());
        if sync {
            self.inner.sync.arrive();
        }
        sync
    }

    /// `None` when `incoming` bytes fit in the active segment and under the
    /// bound of unwritten bytes; else what to wait for before trying again: the
    /// end of the roll that makes room (started here when the segment is full
    /// and no roll runs yet), or the sync thread's next write (asked for here).
    /// A full segment is rolled by the sync thread (see `sync`): no file I/O
    /// runs on the append path.
    #[inline]
    fn room(&self, st: &mut State, incoming: u64) -> Option<RollWait> {
        let wait = match st.room(incoming, self.inner.options.segment_size) {
            Room::Fits => return None,
            Room::Rolling => Wait::Roll(self.inner.sync.roll_watch()),
            Room::StartRoll => Wait::Roll(self.inner.sync.request_roll()),
            Room::Backlog => Wait::Write(self.inner.sync.write_watch()),
        };
        Some(RollWait(wait))
    }
}
