//! SPOP's set: any member can leave at random in O(1), so popping a big
//! set empty costs time in proportion to its size (a `HashSet` has no
//! random member; taking the first one again and again walks ever more
//! emptied buckets).

use std::collections::HashMap;

/// A set that can give up a random member in O(1) (SPOP): members in a
/// `Vec`, each one's place in a `HashMap`.
#[derive(Default)]
pub struct Set {
    members: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, usize>,
}

impl Set {
    pub fn len(&self) -> usize {
        self.members.len()
    }

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
