//! Lists and hashes: LPUSH/RPUSH/LPOP/RPOP/LRANGE, HSET/HGET (sets are in
//! `set.rs`). A collection is made by its first write and deleted when its
//! last member leaves, as in Redis.

use crate::commands::Call;
use crate::lex::parse_int;
use crate::reply::{NOT_INTEGER, WRONGTYPE};
use crate::store::{Hash, Store, Value};
use std::collections::{HashMap, VecDeque};

/// The collection at `key` as `get` picks it out of the value, made with
/// `make` when the key is absent. `None`: the key holds another kind.
pub fn collection<'v, T>(
    db: &'v mut Store,
    key: &[u8],
    make: fn() -> Value,
    get: fn(&mut Value) -> Option<&mut T>,
) -> Option<&'v mut T> {
    if db.get(key).is_none() {
        db.insert(key, make());
    }
    db.get(key).and_then(get)
}

fn list(v: &mut Value) -> Option<&mut VecDeque<Box<[u8]>>> {
    match v {
        Value::List(l) => Some(l),
        _ => None,
    }
}

fn hash(v: &mut Value) -> Option<&mut Hash> {
    match v {
        Value::Hash(h) => Some(h),
        _ => None,
    }
}

fn push(c: &mut Call<'_, '_, '_>, front: bool) {
    let make = || Value::List(VecDeque::new());
    let Some(l) = collection(c.db, c.args.get(1), make, list) else {
        return c.out.error(WRONGTYPE);
    };
    for item in c.args.iter().skip(2) {
        if front {
            l.push_front(item.into())
        } else {
            l.push_back(item.into())
        }
    }
    let len = l.len() as i64;
    c.out.int(len);
}

pub fn lpush(c: &mut Call<'_, '_, '_>) {
    push(c, true);
}

pub fn rpush(c: &mut Call<'_, '_, '_>) {
    push(c, false);
}

/// The COUNT of LPOP/RPOP/SPOP: `Some(None)` when not given; `None` once
/// the error is answered.
pub fn count(c: &mut Call<'_, '_, '_>, name: &str) -> Option<Option<usize>> {
    let error = match c.args.len() {
        2 => return Some(None),
        3 => match parse_int(c.args.get(2)) {
            Some(n) if n >= 0 => return Some(Some(n as usize)),
            Some(_) => "ERR value is out of range, must be positive",
            None => NOT_INTEGER,
        },
        _ => {
            c.out.arity_error(name);
            return None;
        }
    };
    c.out.error(error);
    None
}

/// LPOP / RPOP `key [count]`: one element, or an array of up to `count`.
fn pop(c: &mut Call<'_, '_, '_>, front: bool, name: &str) {
    let Some(n) = count(c, name) else { return };
    let key = c.args.get(1);
    let l = match c.db.get(key) {
        None if n.is_some() => return c.out.nil_array(),
        None => return c.out.nil(),
        Some(v) => match list(v) {
            Some(l) => l,
            None => return c.out.error(WRONGTYPE),
        },
    };
    let take = n.unwrap_or(1).min(l.len());
    if n.is_some() {
        c.out.array(take);
    }
    for _ in 0..take {
        let item = if front { l.pop_front() } else { l.pop_back() };
        c.out.bulk(&item.expect("counted above"));
    }
    if l.is_empty() {
        c.db.remove(key);
    }
}

pub fn lpop(c: &mut Call<'_, '_, '_>) {
    pop(c, true, "lpop");
}

pub fn rpop(c: &mut Call<'_, '_, '_>) {
    pop(c, false, "rpop");
}

pub fn lrange(c: &mut Call<'_, '_, '_>) {
    let (Some(start), Some(stop)) = (parse_int(c.args.get(2)), parse_int(c.args.get(3))) else {
        return c.out.error(NOT_INTEGER);
    };
    let l = match c.db.get(c.args.get(1)).map(list) {
        None => return c.out.array(0),
        Some(None) => return c.out.error(WRONGTYPE),
        Some(Some(l)) => l,
    };
    let len = l.len() as i64;
    let from = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let to = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if from > to || from >= len {
        return c.out.array(0);
    }
    c.out.array((to - from + 1) as usize);
    for item in l.range(from as usize..=to as usize) {
        c.out.bulk(item);
        c.out.flush_if_big();
    }
}

/// HSET `key field value [field value ...]`: how many fields are new.
pub fn hset(c: &mut Call<'_, '_, '_>) {
    if c.args.len() % 2 == 1 {
        return c.out.arity_error("hset");
    }
    let make = || Value::Hash(HashMap::new());
    let Some(h) = collection(c.db, c.args.get(1), make, hash) else {
        return c.out.error(WRONGTYPE);
    };
    let mut added = 0;
    for i in (2..c.args.len()).step_by(2) {
        let (field, value) = (c.args.get(i), c.args.get(i + 1));
        added += i64::from(h.insert(field.into(), value.into()).is_none());
    }
    c.out.int(added);
}

pub fn hget(c: &mut Call<'_, '_, '_>) {
    match c.db.get(c.args.get(1)).map(hash) {
        None => c.out.nil(),
        Some(None) => c.out.error(WRONGTYPE),
        Some(Some(h)) => match h.get(c.args.get(2)) {
            Some(v) => c.out.bulk(v),
            None => c.out.nil(),
        },
    }
}
