//! The generator's own resource use, from /proc: CPU seconds and peak RSS. A stage
//! whose generator ran out of CPU measured its own queueing, not the server.

use std::time::Duration;

/// CPU time (user + system) this process has used, if the platform tells.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// Highest resident set size of this process so far, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Share of all cores used between two CPU-time readings over `wall`.
pub fn utilization(
    before: Option<Duration>,
    after: Option<Duration>,
    wall: Duration,
) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    let budget = wall.as_secs_f64() * cores() as f64;
    (budget > 0.0).then(|| used.as_secs_f64() / budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let after = cpu_time();
        assert!(after >= before, "{before:?} {after:?}");
        assert!(peak_rss_bytes().unwrap() > 1_000_000);
        let share = utilization(
            Some(Duration::ZERO),
            Some(Duration::from_secs(1)),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!((share - 1.0 / cores() as f64).abs() < 1e-9);
    }
}
