//! The chat room (`main.rs`): its members, what was said this loop
//! iteration, and sending that to everyone once per iteration. With
//! `--threads N` each loop holds the members it serves, and what its own
//! members said goes to the other loops' rooms as one message per round
//! (`Ctx::tell_loops`), where each sends it to its members by the same rules.

use crate::Args;
use ioplex::{ConnId, Ctx, TimerId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// What the room gathers in one loop iteration before senders must wait.
const ROUND: usize = 64 << 10;

/// One member of the room.
pub struct Member {
    pub name: String,
    /// Messages to it dropped since it fell behind; 0 while it keeps up.
    dropped: u64,
    /// Lines it may still send now, refilled at `--rate`.
    tokens: f64,
    last: Instant,
    /// Messages of this round said before it joined: not for it.
    before: usize,
}

/// The room: members by connection, and what was said this iteration.
pub struct Chat {
    pub args: Args,
    pub members: HashMap<ConnId, Member>,
    /// This iteration's messages, and who said each (no one hears himself;
    /// `None`: a member of another loop).
    pub round: Vec<u8>,
    pub said: Vec<(Option<ConnId>, usize, usize)>,
    /// What this loop's members said this round, for the other loops
    /// (kept only with `--threads` over 1).
    pub told: Vec<u8>,
    /// Who said something this round (they get it without their own parts).
    pub speakers: HashSet<ConnId>,
    /// Senders that found the round full: read again after the next flush.
    pub waiting: Vec<ConnId>,
    /// When the last round went out, and the timer for the next, if set.
    pub flushed: Instant,
    pub flush_due: Option<TimerId>,
}

impl Member {
    /// A member joining when `before` messages of the round were said,
    /// with a full burst of lines to send.
    fn new(name: String, rate: f64, before: usize) -> Member {
        let (dropped, tokens, last) = (0, 2.0 * rate, Instant::now());
        Member {
            name,
            dropped,
            tokens,
            last,
            before,
        }
    }
}

impl Chat {
    /// An empty room.
    pub fn new(args: Args) -> Chat {
        let (members, round, said, waiting) = (HashMap::new(), Vec::new(), Vec::new(), Vec::new());
        let speakers = HashSet::new();
        Chat {
            args,
            members,
            round,
            said,
            told: Vec::new(),
            speakers,
            waiting,
            flushed: Instant::now(),
            flush_due: None,
        }
    }

    /// How long rounds are gathered at least: 2 µs per member (a flush costs
    /// a send to each), so a room of thousands talking flushes less often
    /// than every iteration; at most 25 ms.
    pub fn flush_gap(&self) -> Duration {
        Duration::from_micros(2 * self.members.len() as u64).min(Duration::from_millis(25))
    }

    /// The room said enough this iteration: senders wait for the next.
    pub fn round_full(&self) -> bool {
        self.round.len() >= ROUND
    }

    /// `id` joins: announced to the others, and hears from now on.
    pub fn join(&mut self, id: ConnId, name: String) {
        self.post(id, &[b"* ", name.as_bytes(), b" joined\n"]);
        let m = Member::new(name, self.args.rate, self.said.len());
        self.members.insert(id, m);
    }

    /// Adds a message from `from` to this iteration's round.
    pub fn post(&mut self, from: ConnId, parts: &[&[u8]]) {
        let start = self.round.len();
        parts.iter().for_each(|p| self.round.extend_from_slice(p));
        if self.args.loops.threads > 1 {
            self.told.extend_from_slice(&self.round[start..]); // for the other loops
        }
        self.said.push((Some(from), start, self.round.len()));
        self.speakers.insert(from);
    }

    /// Adds what another loop's members said (whole lines) to this round.
    pub fn heard(&mut self, lines: &[u8]) {
        for line in lines.split_inclusive(|&b| b == b'\n') {
            let start = self.round.len();
            self.round.extend_from_slice(line);
            self.said.push((None, start, self.round.len()));
        }
    }

    /// Takes one of `m`'s lines from its allowance; `Some(wait)`: none
    /// left, it may send the next one after `wait`.
    pub fn take_token(rate: f64, m: &mut Member, now: Instant) -> Option<Duration> {
        let refill = now.duration_since(m.last).as_secs_f64() * rate;
        (m.tokens, m.last) = ((m.tokens + refill).min(2.0 * rate), now);
        if m.tokens < 1.0 {
            return Some(Duration::from_secs_f64((1.0 - m.tokens) / rate));
        }
        m.tokens -= 1.0;
        None
    }

    /// What this loop's members said this round, to the other loops' rooms;
    /// a loop whose queue is full misses it, and the log says so.
    fn tell_others(&mut self, ctx: &mut Ctx<'_>) {
        let others = ctx.loop_count() - 1;
        if others > 0 && !self.told.is_empty() {
            let reached = ctx.tell_loops(&self.told);
            if reached < others {
                let (n, missed) = (self.told.len(), others - reached);
                log::warn!("{n} bytes of the room not relayed to {missed} loop(s): queue full");
            }
        }
        self.told.clear();
    }

    /// Sends the round to every member but the one who said each part, one
    /// write per member; drops it for members that read too slowly.
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        self.tell_others(ctx);
        for (&id, m) in self.members.iter_mut() {
            let since = std::mem::take(&mut m.before);
            let whole = [&self.round[..]];
            let mine;
            let (parts, count): (&[&[u8]], usize) = if since == 0 && !self.speakers.contains(&id) {
                (&whole, self.said.len()) // most members: all of it, one slice
            } else {
                mine = others(&self.round, &self.said[since..], id);
                (&mine.0, mine.1)
            };
            if count == 0 {
                continue;
            }
            if ctx.queued(id) >= self.args.backlog {
                if m.dropped == 0 {
                    log::warn!("{}: reads too slowly: dropping its messages", m.name);
                    ctx.send_to(id, b"* you read too slowly: dropping messages\n");
                }
                m.dropped += count as u64;
                continue;
            }
            if m.dropped > 0 {
                let notice = format!("* {} messages dropped\n", std::mem::take(&mut m.dropped));
                ctx.send_to(id, notice.as_bytes());
            }
            ctx.send_parts_to(id, parts);
        }
        self.speakers.clear();
        self.round.clear();
        self.said.clear();
        self.flushed = Instant::now();
        self.waiting.drain(..).for_each(|id| ctx.resume_reading(id));
    }
}

/// The parts of `round` said by others than `id` (merged where they touch),
/// and how many messages they hold.
fn others<'a>(
    round: &'a [u8],
    said: &[(Option<ConnId>, usize, usize)],
    id: ConnId,
) -> (Vec<&'a [u8]>, usize) {
    let (mut parts, mut count) = (Vec::new(), 0);
    let mut open: Option<(usize, usize)> = None; // a run of others' messages
    for &(from, a, b) in said {
        if from == Some(id) {
            parts.extend(open.take().map(|(a, b)| &round[a..b]));
            continue;
        }
        count += 1;
        open = Some(open.map_or((a, b), |(start, _)| (start, b)));
    }
    parts.extend(open.map(|(a, b)| &round[a..b]));
    (parts, count)
}
