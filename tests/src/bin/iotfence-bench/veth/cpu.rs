//! CPU pinning and accounting for the router's measurements.

use anyhow::{bail, Context};

pub(super) struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Ticks of one CPU from /proc/stat: busy = user + nice + system + irq +
/// softirq; steal (the host's) counts in the total only.
pub(super) fn cpu_times(cpu: usize) -> anyhow::Result<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&label))
        .with_context(|| format!("no {label} in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Ok(CpuTimes {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        total: v.iter().take(8).sum(),
    })
}

pub fn ticks_per_second() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

pub(super) fn set_affinity(pid: i32, cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        bail!(
            "pinning {pid} to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub(super) fn is_kthread(pid: i32) -> bool {
    // Kernel threads have no executable.
    std::fs::read_link(format!("/proc/{pid}/exe")).is_err()
}
