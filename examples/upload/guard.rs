//! What the upload server (`main.rs`) allows before any password is
//! hashed: failure back-off per user and per address, and registration
//! limits. Checked on the loop; costs a map lookup, not an Argon2 hash.
//!
//! Back-off: the first `FREE` failures cost nothing; after that each
//! attempt must wait 1 s, 2 s, 4 s … (at most 30 s) after the last failure
//! of that user *or* that address. A check that is still running counts as
//! a failure until it is known, so eight connections at once gain no more
//! tries than one. A success clears the user's count, not the address's.
//! Entries are forgotten 15 minutes after their last failure (sooner, past
//! 4,096 of them, unless backed off: a flood of names stays bounded).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const FREE: u32 = 3;
const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(30);
const FORGET: Duration = Duration::from_secs(15 * 60);
const WINDOW: Duration = Duration::from_secs(3600);
/// Entries past which the expired are dropped (then all but the backed-off).
const KEEP: usize = 4096;

/// Failures (and checks under way) of one user or address.
#[derive(Clone, Copy)]
struct Strikes {
    fails: u32,
    running: u32,
    last: Instant,
}

impl Strikes {
    /// How long an attempt must still wait.
    fn wait(&self, now: Instant) -> Duration {
        let n = self.fails + self.running;
        if n < FREE {
            return Duration::ZERO;
        }
        let pause = FIRST.saturating_mul(1 << (n - FREE).min(5)).min(LONGEST);
        pause.saturating_sub(now.duration_since(self.last))
    }
}

/// A map from user or address to its strikes, pruned as it grows.
struct Tally<K>(HashMap<K, Strikes>);

impl<K: Hash + Eq + Clone> Tally<K> {
    fn wait(&self, k: &K, now: Instant) -> Duration {
        self.0.get(k).map_or(Duration::ZERO, |s| s.wait(now))
    }
    fn entry(&mut self, k: &K, now: Instant) -> &mut Strikes {
        if self.0.len() >= KEEP && !self.0.contains_key(k) {
            self.0
                .retain(|_, s| s.running > 0 || now.duration_since(s.last) < FORGET);
            if self.0.len() >= KEEP {
                // A flood of names or addresses: keep what still matters.
                self.0.retain(|_, s| s.running > 0 || s.fails >= FREE);
            }
        }
        let fresh = Strikes {
            fails: 0,
            running: 0,
            last: now,
        };
        self.0.entry(k.clone()).or_insert(fresh)
    }
}

/// How a login check ended, for the back-off.
#[derive(Clone, Copy, PartialEq)]
pub enum Verdict {
    Right,
    WrongPassword,
    /// Counted against the address only.
    NoSuchUser,
    /// The check never ran (its client left while it waited, no worker).
    Unknown,
}

/// Back-off and registration limits.
pub struct Guard {
    users: Tally<String>,
    addrs: Tally<IpAddr>,
    /// Registrations per address in the current hour: (window start, count).
    registered: HashMap<IpAddr, (Instant, u32)>,
    /// Users held (and registrations under way) against `max_users`.
    pub user_count: usize,
    pub max_users: usize,
    pub per_addr_hour: u32,
}

impl Guard {
    /// Limits for a server already holding `user_count` users.
    pub fn new(user_count: usize, max_users: usize, per_addr_hour: u32) -> Guard {
        let (users, addrs) = (Tally(HashMap::new()), Tally(HashMap::new()));
        let registered = HashMap::new();
        Guard {
            users,
            addrs,
            registered,
            user_count,
            max_users,
            per_addr_hour,
        }
    }

    /// May `ip` try `user`'s password now? On yes, the check counts as running.
    pub fn start_login(&mut self, user: &str, ip: IpAddr) -> Result<(), String> {
        let (now, user) = (Instant::now(), user.to_string());
        let wait = self.users.wait(&user, now).max(self.addrs.wait(&ip, now));
        if !wait.is_zero() {
            let secs = wait.as_secs_f64().ceil();
            return Err(format!(
                "too many failed logins for this user or address; try again in {secs} s"
            ));
        }
        self.users.entry(&user, now).running += 1;
        self.addrs.entry(&ip, now).running += 1;
        Ok(())
    }

    /// A login check ended with `verdict`.
    pub fn end_login(&mut self, user: &str, ip: IpAddr, verdict: Verdict) {
        let (now, user) = (Instant::now(), user.to_string());
        let (u, a) = (self.users.entry(&user, now), self.addrs.entry(&ip, now));
        for s in [&mut *u, &mut *a] {
            s.running = s.running.saturating_sub(1);
        }
        match verdict {
            Verdict::Right => _ = self.users.0.remove(&user),
            Verdict::Unknown => {}
            wrong => {
                let strike = |s: &mut Strikes| (s.fails, s.last) = (s.fails + 1, now);
                strike(self.addrs.entry(&ip, now));
                if wrong == Verdict::WrongPassword {
                    strike(self.users.entry(&user, now));
                }
            }
        }
    }

    /// May `ip` register a user now? On yes, it counts until [`Guard::end_register`].
    pub fn start_register(&mut self, ip: IpAddr) -> Result<(), String> {
        let now = Instant::now();
        if self.user_count >= self.max_users {
            return Err(format!(
                "registration closed: this server holds its {} users",
                self.max_users
            ));
        }
        if self.registered.len() >= KEEP {
            self.registered
                .retain(|_, (t, _)| now.duration_since(*t) < WINDOW);
        }
        let (start, n) = self.registered.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *n) = (now, 0);
        }
        if *n >= self.per_addr_hour {
            let wait = (WINDOW - now.duration_since(*start)).as_secs().div_ceil(60);
            return Err(format!(
                "too many registrations from your address; try again in {wait} min"
            ));
        }
        *n += 1;
        self.user_count += 1;
        Ok(())
    }

    /// A registration ended; one that failed gives its place back.
    pub fn end_register(&mut self, ip: IpAddr, ok: bool) {
        if !ok {
            self.user_count -= 1;
            if let Some((_, n)) = self.registered.get_mut(&ip) {
                *n = n.saturating_sub(1);
            }
        }
    }
}
