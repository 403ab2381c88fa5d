//! What the mesh's processes cost, read from `/proc` (Linux), for `bench-orders --pid name=PID`:
//! CPU share over a phase (`/proc/PID/stat`) and memory (`VmRSS` now, `VmHWM` peak, from
//! `/proc/PID/status`).
//!
//! A service may run as several processes of one binary on one database, named `store`,
//! `store-2`, `store-3` (`scripts/bench-scaling.sh`): each is still shown on its own, and their
//! CPU is also summed under the service's name, since a replica's share alone says little about
//! what the service costs.

use std::time::Duration;

/// `name=PID`, the value of `--pid`.
pub fn parse_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=PID")?;
    Ok((name.to_owned(), pid.parse().map_err(|e| format!("{e}"))?))
}

/// The service a process name belongs to: `store-2` → `store`. Only a numeric suffix is a
/// replica number (`bench-orders` is a name of its own).
pub fn service_of(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((service, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => service,
        _ => name,
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU ticks of every process, to diff over a phase.
pub fn cpu_snapshot(pids: &[(String, u32)]) -> Vec<Option<u64>> {
    pids.iter().map(|(_, pid)| cpu_ticks(*pid)).collect()
}

/// Clock ticks per second: 100 on every Linux this runs on (`getconf CLK_TCK`).
const CLK_TCK: f64 = 100.0;

/// Prints each process's CPU share since `before`, then the sums: per service run as several
/// processes, and of everything measured (the machine's share that went to the benchmark).
pub fn print_cpu(pids: &[(String, u32)], before: &[Option<u64>], elapsed: Duration) {
    if pids.is_empty() {
        return;
    }
    let after = cpu_snapshot(pids);
    let mut parts = Vec::new();
    // (service, processes, percent), in the order the services first appear.
    let mut services: Vec<(&str, usize, f64)> = Vec::new();
    for (i, (name, _)) in pids.iter().enumerate() {
        let (Some(a), Some(b)) = (after[i], before[i]) else {
            continue;
        };
        let pct = a.saturating_sub(b) as f64 / CLK_TCK / elapsed.as_secs_f64() * 100.0;
        parts.push(format!("{name} {pct:.0}%"));
        let service = service_of(name);
        match services.iter_mut().find(|(s, ..)| *s == service) {
            Some((_, n, sum)) => {
                *n += 1;
                *sum += pct;
            }
            None => services.push((service, 1, pct)),
        }
    }
    println!("  CPU (100% = one core): {}", parts.join(", "));
    let mut sums: Vec<String> = services
        .iter()
        .filter(|(_, n, _)| *n > 1)
        .map(|(s, n, pct)| format!("{s} ({n} processes) {pct:.0}%"))
        .collect();
    let all: f64 = services.iter().map(|(.., pct)| pct).sum();
    sums.push(format!("all processes {all:.0}%"));
    println!("  CPU summed: {}", sums.join(", "));
}

/// Each process's resident memory now (`VmRSS`), in MB.
pub fn rss_mb(pids: &[(String, u32)]) -> Vec<Option<f64>> {
    pids.iter()
        .map(|(_, pid)| status_kb(*pid, "VmRSS:").map(|kb| kb as f64 / 1024.0))
        .collect()
}

/// The target for a service at rest (issue 16).
const IDLE_TARGET_MB: f64 = 20.0;

/// A table of each process's memory: at rest before the load, at rest after `load` of it, and
/// its peak; then the peak alone on the one line earlier runs printed (`peak RSS (VmHWM): …`).
pub fn print_memory(
    pids: &[(String, u32)],
    startup: &[Option<f64>],
    idle: &[Option<f64>],
    load: Duration,
) {
    if pids.is_empty() {
        return;
    }
    let peak: Vec<Option<f64>> = pids
        .iter()
        .map(|(_, pid)| status_kb(*pid, "VmHWM:").map(|kb| kb as f64 / 1024.0))
        .collect();
    let mb = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"));
    let idle_header = format!("rss idle after load ({:.0} s of load)", load.as_secs_f64());
    println!(
        "memory per process (MB; VmRSS, VmHWM; target ≤ {IDLE_TARGET_MB:.0} MB idle per service):"
    );
    println!(
        "  {:<14} {:>18}  {idle_header}  {:>8}",
        "process", "rss after start-up", "peak rss"
    );
    for (i, (name, _)) in pids.iter().enumerate() {
        println!(
            "  {name:<14} {:>18}  {:>w$}  {:>8}",
            mb(startup[i]),
            mb(idle[i]),
            mb(peak[i]),
            w = idle_header.chars().count()
        );
    }
    let peaks: Vec<String> = pids
        .iter()
        .zip(&peak)
        .map(|((name, _), p)| match p {
            Some(p) => format!("{name} {p:.1} MB"),
            None => format!("{name} ?"),
        })
        .collect();
    println!("peak RSS (VmHWM): {}", peaks.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_belong_to_their_service_and_hyphenated_names_stay_whole() {
        assert_eq!(service_of("store"), "store");
        assert_eq!(service_of("store-2"), "store");
        assert_eq!(service_of("store-12"), "store");
        assert_eq!(service_of("bench-orders"), "bench-orders");
        assert_eq!(service_of("store-"), "store-");
    }

    #[test]
    fn this_process_has_cpu_ticks_and_resident_memory() {
        let me = vec![("me".to_owned(), std::process::id())];
        assert!(cpu_snapshot(&me)[0].is_some());
        assert!(rss_mb(&me)[0].is_some_and(|mb| mb > 0.0));
    }
}
