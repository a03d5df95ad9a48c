//! Where a bench run writes its report: one rule for every bench here.
//!
//! The committed report, `benches/results/NAME.*`, is rewritten only by a
//! full run given `--update`. Every other run writes beside it, under a
//! name git ignores, so running a bench never dirties the tree:
//!
//! | run | files |
//! |---|---|
//! | full, `--update` | `NAME.*` (commit them) |
//! | full | `NAME-new.*` |
//! | `--quick` | `NAME-quick.*` |
//! | part of the grid, or under a profiler | `NAME-partial.*` |

/// The file stem for a run of bench `name`, or why `--update` is refused.
pub fn stem(name: &str, update: bool, quick: bool, partial: bool) -> Result<String, String> {
    match (update, quick, partial) {
        (true, false, false) => Ok(name.to_owned()),
        (true, ..) => Err(format!(
            "--update rewrites the committed {name} report: only a full run may (drop --quick and the subset flags)"
        )),
        (false, _, true) => Ok(format!("{name}-partial")),
        (false, true, false) => Ok(format!("{name}-quick")),
        (false, false, false) => Ok(format!("{name}-new")),
    }
}
