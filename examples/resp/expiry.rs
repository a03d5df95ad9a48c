//! Deadlines: EXPIRE (NX/XX/GT/LT), TTL, PTTL. A deadline is kept in
//! milliseconds on the store's monotonic clock; TTL rounds to the nearest
//! second as Redis does, so `EXPIRE k 100` then `TTL k` says 100.

use crate::commands::{Call, is};
use crate::lex::parse_int;
use crate::reply::NOT_INTEGER;

/// `now + amount` (seconds or milliseconds) as a store deadline; `None`
/// (the caller answers "invalid expire time") when it does not fit.
pub fn deadline(now: u64, amount: i64, seconds: bool) -> Option<i64> {
    let ms = if seconds {
        amount.checked_mul(1000)?
    } else {
        amount
    };
    ms.checked_add(now as i64)
}

/// `-ERR invalid expire time in 'set' command`.
pub fn invalid_expire(c: &mut Call<'_, '_, '_>, command: &str) {
    let parts: [&[u8]; 3] = [
        b"ERR invalid expire time in '",
        command.as_bytes(),
        b"' command",
    ];
    c.out.error_parts(&parts);
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`; a time already past deletes the key.
pub fn expire(c: &mut Call<'_, '_, '_>) {
    let Some(secs) = parse_int(c.args.get(2)) else {
        return c.out.error(NOT_INTEGER);
    };
    let now = c.db.now_ms();
    let Some(at) = deadline(now, secs, true) else {
        return invalid_expire(c, "expire");
    };
    let mut flag = None;
    for i in 3..c.args.len() {
        let Some(f) = ["nx", "xx", "gt", "lt"].into_iter().find(|f| is(c, i, f)) else {
            let parts: [&[u8]; 2] = [b"ERR Unsupported option ", c.args.get(i)];
            return c.out.error_parts(&parts);
        };
        match (flag, f) {
            (None, _) => flag = Some(f),
            (Some(old), _) if old == f => {}
            (Some("gt" | "lt"), "gt" | "lt") => {
                return c
                    .out
                    .error("ERR GT and LT options at the same time are not compatible");
            }
            _ => {
                return c
                    .out
                    .error("ERR NX and XX, GT or LT options at the same time are not compatible");
            }
        }
    }
    let key = c.args.get(1);
    let Some(old) = c.db.deadline(key) else {
        return c.out.int(0);
    };
    let old_ms = if old == 0 { i64::MAX } else { old as i64 }; // none: forever
    let allowed = match flag {
        Some("nx") => old == 0,
        Some("xx") => old != 0,
        Some("gt") => old != 0 && at > old_ms,
        Some("lt") => at < old_ms,
        _ => true,
    };
    if !allowed {
        return c.out.int(0);
    }
    if at <= now as i64 {
        c.db.remove(key);
    } else {
        c.db.set_deadline(key, at as u64);
    }
    c.out.int(1);
}

/// Milliseconds left: -2 no such key, -1 no deadline.
fn left(c: &mut Call<'_, '_, '_>) -> i64 {
    let now = c.db.now_ms();
    match c.db.deadline(c.args.get(1)) {
        None => -2,
        Some(0) => -1,
        Some(at) => at.saturating_sub(now) as i64,
    }
}

/// Seconds left, rounded to the nearest as Redis does (`EXPIRE k 100` then `TTL k`: 100).
pub fn ttl(c: &mut Call<'_, '_, '_>) {
    let ms = left(c);
    let rounded = ms / 1000 + i64::from(ms % 1000 >= 500); // no `ms + 500`: it may overflow
    c.out.int(if ms < 0 { ms } else { rounded });
}

pub fn pttl(c: &mut Call<'_, '_, '_>) {
    let ms = left(c);
    c.out.int(ms);
}
