//! Output: [`Core::send`] writes at once and queues only what the socket
//! refuses (another loop's connection: into that loop's queue, `mesh`);
//! [`Core::flush`] writes the queue on WRITABLE.
//!
//! The watermarks live here: past `output_high_water` reading from that
//! connection pauses (the peer is not reading its replies, so stop making
//! more), below `output_low_water` it resumes, and past `max_output` the
//! connection is closed as a slow consumer.

use super::buffer::FilePart;
use super::core::Core;
use super::state::{Flags, Kind, State, sendable};
use crate::action::CloseReason;
use crate::metrics::add;
use crate::sys;
use crate::token::ConnId;
use std::io;
use std::os::fd::AsRawFd;

impl Core {
    /// Writes `parts` (at most 8) to a connection: directly when nothing is
    /// queued, the rest (or all of it) into its output queue. `false` if
    /// the connection is gone or closing.
    #[inline]
    pub(crate) fn send(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        if id.loop_index() != self.index as usize {
            return self.send_remote(id, parts); // another loop's connection
        }
        if self.completion {
            return self.send_queued(id, parts);
        }
        let metrics = &*self.metrics;
        let Some((fd, _, c)) = sendable(&mut self.entries, id) else {
            return false;
        };
        let total = match parts {
            [one] => one.len(),
            _ => parts.iter().map(|p| p.len()).sum(),
        };
        let mut written = 0;
        if c.out.is_none() && total > 0 {
            add(&metrics.writes, 1);
            let fd = fd.as_raw_fd();
            let r = match parts {
                [one] => sys::send(fd, one),
                _ => sys::send_parts(fd, parts),
            };
            match r {
                Ok(n) => {
                    add(&metrics.bytes_out, n as u64);
                    written = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("{id}: write failed: {e}");
                    self.abort(id.key(), CloseReason::Error(e.kind()));
                    return false;
                }
            }
        }
        if written == total {
            return true;
        }
        self.queue(id, parts, written)
    }

    /// Queues what the socket did not take (`parts` after `skip` bytes) and
    /// applies the watermarks.
    #[cold]
    pub(crate) fn queue(&mut self, id: ConnId, parts: &[&[u8]], mut skip: usize) -> bool {
        let (max_output, high) = (self.cfg.max_output, self.cfg.output_high_water);
        let Some((_, flags, c)) = sendable(&mut self.entries, id) else {
            return false;
        };
        let fresh = c.out.is_none();
        let out = c.out.get_or_insert_with(|| self.pool.take());
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            out.push(&p[skip..]);
            skip = 0;
        }
        let queued = out.in_memory(); // a waiting file is not in memory
        let pause = queued > high && !flags.has(Flags::OUTPUT_FULL) && c.state == State::Open;
        if pause {
            flags.set(Flags::OUTPUT_FULL);
        }
        if fresh {
            self.queued_conns += 1;
        }
        if queued > max_output {
            log::warn!(
                "{id}: {queued} bytes queued, over max_output {max_output}: closing slow consumer"
            );
            add(&self.metrics.output_limit, 1);
            self.abort(id.key(), CloseReason::OutputLimit);
            return false;
        }
        if pause {
            add(&self.metrics.paused, 1);
            log::debug!("{id}: {queued} bytes queued: reading paused");
        }
        self.mark_dirty(id.key());
        true
    }

    /// Writes queued output until the socket refuses; resumes a paused reader
    /// below the low watermark; finishes a requested close once empty.
    /// Returns whether an open connection's queue just became empty
    /// (then the handler hears [`Handler::on_drain`](crate::Handler::on_drain)).
    pub(crate) fn flush(&mut self, key: usize) -> bool {
        let low = self.cfg.output_low_water;
        let metrics = &*self.metrics;
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        let Kind::Conn(c) = &mut e.kind else {
            return false;
        };
        // Nothing queued: nothing to write, resume or finish (a paused
        // reader has output queued; a flushed close already finished).
        let Some(out) = c.out.as_mut() else {
            return false;
        };
        let fd = e.fd.as_raw_fd();
        while !out.is_empty() {
            let r = match out.front_file() {
                Some(f) => send_file_part(metrics, fd, f).inspect(|_| out.file_progress()),
                None => {
                    add(&metrics.writes, 1);
                    sys::send(fd, out.bytes()).inspect(|&n| out.consume(n))
                }
            };
            match r {
                Ok(n) => add(&metrics.bytes_out, n as u64),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    log::debug!(
                        "{}: write failed: {err}",
                        ConnId::new(self.index, key, e.generation)
                    );
                    self.abort(key, CloseReason::Error(err.kind()));
                    return false;
                }
            }
        }
        let (queued, held) = (out.len(), out.in_memory());
        if queued == 0 {
            if let Some(out) = c.out.take() {
                self.pool.give(out);
            }
            self.queued_conns -= 1;
        }
        let resume = e.flags.has(Flags::OUTPUT_FULL) && held <= low;
        if resume {
            e.flags.clear(Flags::OUTPUT_FULL);
            log::debug!(
                "{}: output drained to {queued} bytes: reading resumed",
                ConnId::new(self.index, key, e.generation)
            );
        }
        let finish = queued == 0 && c.state == State::Flushing;
        let drained = queued == 0 && c.state == State::Open;
        if resume {
            self.push_ready(key);
        }
        self.mark_dirty(key);
        if finish {
            self.finish_flush(key);
        }
        drained
    }

    /// Queues `len` bytes of `file` from `offset` behind what is queued for
    /// `id` ([`Ctx::send_file`](crate::Ctx::send_file)); with nothing
    /// queued, a readiness backend sends what the socket takes at once.
    pub(crate) fn send_file(
        &mut self,
        id: ConnId,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        let gone = || {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("{id}: gone or closing"),
            )
        };
        if id.loop_index() != self.index as usize {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{id}: send_file to another loop's connection"),
            ));
        }
        let completion = self.completion;
        let metrics = &*self.metrics;
        let Some((fd, _, c)) = sendable(&mut self.entries, id) else {
            return Err(gone());
        };
        let mut part = FilePart {
            file,
            off: offset,
            end: offset + len,
        };
        if c.out.is_none() && !completion {
            let fd = fd.as_raw_fd();
            while part.off < part.end {
                match send_file_part(metrics, fd, &mut part) {
                    Ok(n) => add(&metrics.bytes_out, n as u64),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        log::debug!("{id}: sendfile failed: {err}");
                        self.abort(id.key(), CloseReason::Error(err.kind()));
                        return Err(err);
                    }
                }
            }
            if part.off == part.end {
                return Ok(());
            }
        }
        let fresh = c.out.is_none();
        let out = c.out.get_or_insert_with(|| self.pool.take());
        if !out.set_file(part) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{id}: a file is being sent already; send the next from on_drain"),
            ));
        }
        if fresh {
            self.queued_conns += 1;
        }
        self.mark_dirty(id.key());
        if completion {
            self.start_send(id.key());
        }
        Ok(())
    }
}

/// One `sendfile` of what is left of `part`, advancing it (a MiB at most, so one
/// connection's large file does not hold the loop); 0 bytes sent of a
/// file that should have more is an error: it was cut short under us.
pub(crate) fn send_file_part(
    metrics: &crate::Metrics,
    fd: std::os::fd::RawFd,
    part: &mut FilePart,
) -> io::Result<usize> {
    add(&metrics.sendfiles, 1);
    let want = (part.end - part.off).min(1 << 20);
    let n = sys::sendfile(fd, part.file.as_raw_fd(), &mut part.off, want)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended before the length given to send_file",
        ));
    }
    Ok(n)
}
