//! What the benches that compare servers do around a measurement: pin a
//! process to one CPU, sum up rounds as a median and a spread, and name
//! the command that made the report.

/// Pins the calling process (pid 0) or `pid` to one CPU.
pub fn pin(pid: libc::pid_t, cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The median (of the two middle values when even); sorts `v`.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median, min and max of the values.
pub fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    let m = median(&mut v)?;
    Some((m, v[0], v[v.len() - 1]))
}

/// The command that made a report, as a person types it: `cargo bench
/// --bench NAME -- ARGS` (`args` as the bench got them, `--bench` dropped).
pub fn command(name: &str, args: &[String]) -> String {
    let shown: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    match shown.is_empty() {
        true => format!("cargo bench --bench {name}"),
        false => format!("cargo bench --bench {name} -- {}", shown.join(" ")),
    }
}
