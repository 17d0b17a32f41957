//! Verdicts and reasons. The numeric values are part of the map layout (the
//! counter index) and the names are stable metric labels.

crate::codes! {
    pub enum Verdict {
        Allowed = 0 => "allowed",
        Dropped = 1 => "dropped",
        /// Would have been dropped; passed because the profile is in audit mode.
        Audited = 2 => "audited",
    }
}

pub const VERDICTS: [Verdict; 3] = Verdict::ALL;

crate::codes! {
    pub enum Reason {
        /// Part of a flow the device opened under a rule, or an allowed inbound one.
        Flow = 0 => "flow",
        /// A static destination rule of the profile.
        Rule = 1 => "rule",
        /// An address learned from DNS for this device, not expired.
        Learned = 2 => "learned",
        /// Not IPv4/IPv6 (ARP, LLDP, ...).
        NotIp = 3 => "not_ip",
        /// IPv6 neighbour discovery / MLD, needed for the link to work.
        NeighborDiscovery = 4 => "neighbor_discovery",
        /// A non-first fragment of an allowed first fragment.
        Fragment = 5 => "fragment",
        /// No rule of the profile allows the destination, protocol and port.
        NotAllowed = 8 => "not_allowed",
        /// Only a learned entry whose TTL (plus grace) has passed matched.
        Expired = 9 => "expired",
        /// Truncated or inconsistent headers.
        Malformed = 10 => "malformed",
        /// A non-first fragment whose first fragment was not allowed or not seen.
        UnknownFragment = 11 => "unknown_fragment",
        /// IPv6 extension-header chain longer than the walk bound or unparseable.
        Ipv6Chain = 12 => "ipv6_chain",
        /// The daemon has not written a complete policy yet (fail closed).
        NotReady = 13 => "not_ready",
    }
}

/// Counter slots per verdict (reason numbers stay below it).
pub const REASON_SLOTS: u32 = 16;

pub const REASONS: [Reason; 12] = Reason::ALL;

impl Reason {
    /// Reasons that allow a packet; every other reason denies it.
    pub const fn allows(self) -> bool {
        (self as u8) < 8
    }
}

crate::codes! {
    /// A profile's mode (`DeviceInfo::mode`).
    pub enum Mode {
        /// Drop what the profile does not allow.
        Enforce = 0 => "enforce",
        /// Pass it, counted and reported as a violation.
        Audit = 1 => "audit",
    }
}

/// Index of a (device, verdict, reason) counter.
#[inline(always)]
pub const fn counter_index(device: u32, verdict: Verdict, reason: Reason) -> u32 {
    device * crate::consts::COUNTER_SLOTS_PER_DEVICE
        + (verdict as u32) * REASON_SLOTS
        + reason as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers and names are keys (counter slots, metric labels): each one
    /// maps back to its variant, and none is taken twice.
    #[test]
    fn codes_round_trip_and_are_unique() {
        fn check<T: Copy + PartialEq + core::fmt::Debug>(
            all: &[T],
            num: impl Fn(T) -> u8,
            name: impl Fn(T) -> &'static str,
            from_u8: impl Fn(u8) -> Option<T>,
            from_name: impl Fn(&str) -> Option<T>,
        ) {
            for (i, a) in all.iter().enumerate() {
                assert_eq!(from_u8(num(*a)), Some(*a));
                assert_eq!(from_name(name(*a)), Some(*a));
                for b in &all[i + 1..] {
                    assert!(num(*a) != num(*b) && name(*a) != name(*b), "{a:?} {b:?}");
                }
            }
        }
        check(
            &Reason::ALL,
            |r| r as u8,
            Reason::name,
            Reason::from_u8,
            Reason::from_name,
        );
        check(
            &Verdict::ALL,
            |v| v as u8,
            Verdict::name,
            Verdict::from_u8,
            Verdict::from_name,
        );
        check(
            &Mode::ALL,
            |m| m as u8,
            Mode::name,
            Mode::from_u8,
            Mode::from_name,
        );
        assert!(Reason::ALL.iter().all(|r| (*r as u32) < REASON_SLOTS));
        assert_eq!(Reason::from_u8(6), None, "a gap is no reason");
    }
}
