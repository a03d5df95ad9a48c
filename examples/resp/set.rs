//! Sets: SADD, SCARD, SPOP. Any member can leave at random in O(1), so
//! popping a big set empty costs time in proportion to its size (a
//! `HashSet` has no random member; taking the first one again and again
//! walks ever more emptied buckets).

use crate::collections::{Members, collection, pop};
use crate::commands::Call;
use crate::reply::WRONGTYPE;
use crate::store::Value;
use std::collections::HashMap;

/// A set that can give up a random member in O(1) (SPOP): members in a
/// `Vec`, each one's place in a `HashMap`.
#[derive(Default)]
pub struct Set {
    members: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, usize>,
}

impl Members for Set {
    fn len(&self) -> usize {
        self.members.len()
    }
    fn take(&mut self, _front: bool) -> Option<Box<[u8]>> {
        self.pop_random()
    }
}

impl Set {
    /// Adds `m`; `false` if it was a member already.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.index.contains_key(m) {
            return false;
        }
        self.index.insert(m.into(), self.members.len());
        self.members.push(m.into());
        true
    }

    pub fn pop_random(&mut self) -> Option<Box<[u8]>> {
        if self.members.is_empty() {
            return None;
        }
        let i = fastrand::usize(..self.members.len());
        let m = self.members.swap_remove(i);
        self.index.remove(&m);
        if let Some(moved) = self.members.get(i) {
            *self.index.get_mut(moved).expect("every member is indexed") = i;
        }
        Some(m)
    }
}

fn set(v: &mut Value) -> Option<&mut Set> {
    match v {
        Value::Set(s) => Some(s),
        _ => None,
    }
}

pub fn sadd(c: &mut Call<'_, '_, '_>) {
    let make = || Value::Set(Set::default());
    let Some(s) = collection(c.db, c.args.get(1), make, set) else {
        return c.out.error(WRONGTYPE);
    };
    let added = c.args.iter().skip(2).filter(|m| s.insert(m)).count();
    c.out.int(added as i64);
}

pub fn scard(c: &mut Call<'_, '_, '_>) {
    match c.db.get(c.args.get(1)).map(set) {
        None => c.out.int(0),
        Some(None) => c.out.error(WRONGTYPE),
        Some(Some(s)) => c.out.int(s.len() as i64),
    }
}

/// SPOP `key [count]`: one random member, or a set of up to `count`.
pub fn spop(c: &mut Call<'_, '_, '_>) {
    pop(c, "spop", set, false);
}
