//! Lists and hashes: LPUSH/RPUSH/LPOP/RPOP/LRANGE, HSET/HGET (sets are in
//! `set.rs`). A collection is made by its first write and deleted when its
//! last member leaves, as in Redis.

use crate::commands::Call;
use crate::lex::parse_int;
use crate::reply::{NOT_INTEGER, WRONGTYPE};
use crate::store::{Hash, Store, Value};
use std::collections::{HashMap, VecDeque};

/// Picks a kind of collection out of a value: `None` for any other kind.
pub type Pick<T> = fn(&mut Value) -> Option<&mut T>;

/// The collection at `key` as `get` picks it out of the value, made with
/// `make` when the key is absent. `None`: the key holds another kind.
pub fn collection<'v, T>(
    db: &'v mut Store,
    key: &[u8],
    make: fn() -> Value,
    get: Pick<T>,
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
fn count(c: &mut Call<'_, '_, '_>, name: &str) -> Option<Option<usize>> {
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

/// What LPOP, RPOP and SPOP pop from.
pub trait Members {
    fn len(&self) -> usize;
    fn take(&mut self, front: bool) -> Option<Box<[u8]>>;
}

impl Members for VecDeque<Box<[u8]>> {
    fn len(&self) -> usize {
        self.len()
    }
    fn take(&mut self, front: bool) -> Option<Box<[u8]>> {
        if front {
            self.pop_front()
        } else {
            self.pop_back()
        }
    }
}

/// LPOP, RPOP, SPOP `key [count]`: one member, or an array (SPOP: a set)
/// of up to `count`. The key goes with its last member.
pub fn pop<T: Members>(c: &mut Call<'_, '_, '_>, name: &str, pick: Pick<T>, front: bool) {
    let Some(n) = count(c, name) else { return };
    let spop = name == "spop";
    let key = c.args.get(1);
    let members = match c.db.get(key) {
        None if n.is_none() => return c.out.nil(),
        None if spop => return c.out.set(0),
        None => return c.out.nil_array(),
        Some(v) => match pick(v) {
            Some(m) => m,
            None => return c.out.error(WRONGTYPE),
        },
    };
    let take = n.unwrap_or(1).min(members.len());
    match n {
        Some(_) if spop => c.out.set(take),
        Some(_) => c.out.array(take),
        None => {}
    }
    for _ in 0..take {
        c.out.bulk(&members.take(front).expect("counted above"));
    }
    if members.len() == 0 {
        c.db.remove(key);
    }
}

pub fn lpop(c: &mut Call<'_, '_, '_>) {
    pop(c, "lpop", list, true);
}

pub fn rpop(c: &mut Call<'_, '_, '_>) {
    pop(c, "rpop", list, false);
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
