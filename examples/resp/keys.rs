//! Strings and counters: GET, SET (EX/PX/NX/XX/KEEPTTL), DEL, EXISTS, INCR
//! and friends, MSET/MGET. GET answers from the stored bytes with no
//! allocation; INCR keeps a number as a number.

use crate::commands::{Call, is};
use crate::expiry::{deadline, invalid_expire};
use crate::lex::parse_int;
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
