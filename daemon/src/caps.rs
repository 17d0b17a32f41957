//! The capabilities `iotfence run` needs, checked against the effective set
//! before anything else: a unit that grants too few is told which, by name,
//! instead of failing later at whichever syscall comes first.

/// (number, name, what it is needed for).
pub const NEEDED: [(u32, &str, &str); 4] = [
    (39, "CAP_BPF", "loading programs, creating and pinning maps"),
    (
        38,
        "CAP_PERFMON",
        "the verifier's rules for trusted programs: the judge subtracts packet pointers, refused without it (\"pointer -= pointer prohibited\")",
    ),
    (
        12,
        "CAP_NET_ADMIN",
        "loading and attaching XDP and TC programs (network program types), marking released DNS answers",
    ),
    (13, "CAP_NET_RAW", "releasing held DNS answers (AF_PACKET)"),
];

/// The effective set (`CapEff` of /proc/self/status).
pub fn effective() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| std::io::Error::other("no CapEff in /proc/self/status"))
}

/// The needed capabilities `effective` lacks, with what each is for.
pub fn missing(effective: u64) -> Vec<(&'static str, &'static str)> {
    NEEDED
        .iter()
        .filter(|(bit, _, _)| effective & (1 << bit) == 0)
        .map(|&(_, name, why)| (name, why))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        let all = NEEDED.iter().fold(0u64, |m, (b, _, _)| m | 1 << b);
        assert!(missing(all).is_empty());
        assert!(missing(u64::MAX).is_empty());
        let no_raw = all & !(1 << 13);
        assert_eq!(
            missing(no_raw),
            [("CAP_NET_RAW", "releasing held DNS answers (AF_PACKET)")]
        );
        assert_eq!(missing(0).len(), NEEDED.len());
        // This process: the test runs as root in CI (all capabilities).
        assert_eq!(effective().unwrap() & all, all, "tests run as root");
    }
}
