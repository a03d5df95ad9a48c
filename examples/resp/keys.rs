//! Strings, counters and deadlines: GET, SET (EX/PX/NX/XX/KEEPTTL), DEL,
//! EXISTS, INCR and friends, MSET/MGET, EXPIRE, TTL/PTTL. GET answers from
//! the stored bytes with no allocation; INCR keeps a number as a number.

use crate::commands::{Call, is};
use crate::parser::parse_int;
use crate::reply::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use crate::store::Value;

pub fn get(c: &mut Call<'_, '_, '_>) {
    match c.db.get(c.args.get(1)) {
        None => c.out.nil(),
        Some(Value::Str(s)) => c.out.bulk(s),
        Some(Value::Int(n)) => c.out.bulk_int(*n),
        Some(_) => c.out.error(WRONGTYPE),
    }
}

/// `now + amount` (seconds or milliseconds) as a store deadline; `None`
/// (the caller answers "invalid expire time") when it does not fit.
fn deadline(now: u64, amount: i64, seconds: bool) -> Option<i64> {
    let ms = if seconds {
        amount.checked_mul(1000)?
    } else {
        amount
    };
    ms.checked_add(now as i64)
}

/// `-ERR invalid expire time in 'set' command`.
fn invalid_expire(c: &mut Call<'_, '_, '_>, command: &str) {
    let parts: [&[u8]; 3] = [
        b"ERR invalid expire time in '",
        command.as_bytes(),
        b"' command",
    ];
    c.out.error_parts(&parts);
}

pub fn set(c: &mut Call<'_, '_, '_>) {
    let (mut nx, mut xx, mut keep, mut ttl) = (false, false, false, None);
    let mut i = 3;
    while i < c.args.len() {
        let unit = if is(c, i, "ex") {
            Some(true)
        } else if is(c, i, "px") {
            Some(false)
        } else {
            None
        };
        match unit {
            Some(seconds) if ttl.is_none() && !keep && i + 1 < c.args.len() => {
                let Some(n) = parse_int(c.args.get(i + 1)) else {
                    return c.out.error(NOT_INTEGER);
                };
                ttl = Some((n, seconds));
                i += 1;
            }
            None if is(c, i, "nx") && !xx => nx = true,
            None if is(c, i, "xx") && !nx => xx = true,
            None if is(c, i, "keepttl") && ttl.is_none() => keep = true,
            _ => return c.out.error(SYNTAX),
        }
        i += 1;
    }
    let now = c.db.now_ms();
    let expires = match ttl {
        None => 0,
        Some((n, seconds)) => match deadline(now, n, seconds) {
            Some(at) if n > 0 => at as u64,
            _ => return invalid_expire(c, "set"),
        },
    };
    let key = c.args.get(1);
    if nx || xx || keep {
        let old = c.db.deadline(key);
        if (nx && old.is_some()) || (xx && old.is_none()) {
            return c.out.nil();
        }
        if keep {
            c.db.set_str(key, c.args.get(2), old.unwrap_or(0));
            return c.out.ok();
        }
    }
    c.db.set_str(key, c.args.get(2), expires);
    c.out.ok();
}

pub fn del(c: &mut Call<'_, '_, '_>) {
    let gone = c.args.iter().skip(1).filter(|k| c.db.remove(k)).count();
    c.out.int(gone as i64);
}

pub fn exists(c: &mut Call<'_, '_, '_>) {
    let found = c
        .args
        .iter()
        .skip(1)
        .filter(|k| c.db.get(k).is_some())
        .count();
    c.out.int(found as i64);
}

/// INCR and friends: a string holding a number becomes that number.
fn add(c: &mut Call<'_, '_, '_>, by: i64) {
    let key = c.args.get(1);
    let slot = match c.db.get(key) {
        Some(slot) => slot,
        None => {
            c.db.insert(key, Value::Int(by));
            return c.out.int(by);
        }
    };
    let now = match slot {
        Value::Int(n) => *n,
        Value::Str(s) => match parse_int(s) {
            Some(n) => n,
            None => return c.out.error(NOT_INTEGER),
        },
        _ => return c.out.error(WRONGTYPE),
    };
    let Some(sum) = now.checked_add(by) else {
        return c.out.error("ERR increment or decrement would overflow");
    };
    *slot = Value::Int(sum);
    c.out.int(sum);
}

pub fn incr(c: &mut Call<'_, '_, '_>) {
    add(c, 1);
}

pub fn decr(c: &mut Call<'_, '_, '_>) {
    add(c, -1);
}

pub fn incrby(c: &mut Call<'_, '_, '_>) {
    match parse_int(c.args.get(2)) {
        Some(by) => add(c, by),
        None => c.out.error(NOT_INTEGER),
    }
}

pub fn decrby(c: &mut Call<'_, '_, '_>) {
    match parse_int(c.args.get(2)).map(i64::checked_neg) {
        Some(Some(by)) => add(c, by),
        Some(None) => c.out.error("ERR decrement would overflow"),
        None => c.out.error(NOT_INTEGER),
    }
}

pub fn mset(c: &mut Call<'_, '_, '_>) {
    if c.args.len() % 2 == 0 {
        return c.out.arity_error("mset");
    }
    for i in (1..c.args.len()).step_by(2) {
        c.db.set_str(c.args.get(i), c.args.get(i + 1), 0);
    }
    c.out.ok();
}

pub fn mget(c: &mut Call<'_, '_, '_>) {
    c.out.array(c.args.len() - 1);
    for key in c.args.iter().skip(1) {
        match c.db.get(key) {
            Some(Value::Str(s)) => c.out.bulk(s),
            Some(Value::Int(n)) => c.out.bulk_int(*n),
            _ => c.out.nil(), // absent, or not a string: nil, as Redis
        }
        c.out.flush_if_big();
    }
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
    c.out.int(if ms < 0 { ms } else { (ms + 500) / 1000 });
}

pub fn pttl(c: &mut Call<'_, '_, '_>) {
    let ms = left(c);
    c.out.int(ms);
}
