//! Verdicts and reasons. The numeric values are part of the map layout (the
//! counter index) and the names are stable metric labels.

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed = 0,
    Dropped = 1,
    /// Would have been dropped; passed because the profile is in audit mode.
    Audited = 2,
}

pub const VERDICTS: [Verdict; 3] = [Verdict::Allowed, Verdict::Dropped, Verdict::Audited];

impl Verdict {
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Dropped => "dropped",
            Verdict::Audited => "audited",
        }
    }
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Part of a flow the device opened under a rule, or an allowed inbound one.
    Flow = 0,
    /// A static destination rule of the profile.
    Rule = 1,
    /// An address learned from DNS for this device, not expired.
    Learned = 2,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NotIp = 3,
    /// IPv6 neighbour discovery / MLD, needed for the link to work.
    NeighborDiscovery = 4,
    /// A non-first fragment of an allowed first fragment.
    Fragment = 5,
    /// No rule of the profile allows the destination, protocol and port.
    NotAllowed = 8,
    /// Only a learned entry whose TTL (plus grace) has passed matched.
    Expired = 9,
    /// Truncated or inconsistent headers.
    Malformed = 10,
    /// A non-first fragment whose first fragment was not allowed or not seen.
    UnknownFragment = 11,
    /// IPv6 extension-header chain longer than the walk bound or unparseable.
    Ipv6Chain = 12,
    /// The daemon has not written a complete policy yet (fail closed).
    NotReady = 13,
}

pub const REASON_SLOTS: u32 = 16;

pub const REASONS: [Reason; 12] = [
    Reason::Flow,
    Reason::Rule,
    Reason::Learned,
    Reason::NotIp,
    Reason::NeighborDiscovery,
    Reason::Fragment,
    Reason::NotAllowed,
    Reason::Expired,
    Reason::Malformed,
    Reason::UnknownFragment,
    Reason::Ipv6Chain,
    Reason::NotReady,
];

impl Reason {
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Flow => "flow",
            Reason::Rule => "rule",
            Reason::Learned => "learned",
            Reason::NotIp => "not_ip",
            Reason::NeighborDiscovery => "neighbor_discovery",
            Reason::Fragment => "fragment",
            Reason::NotAllowed => "not_allowed",
            Reason::Expired => "expired",
            Reason::Malformed => "malformed",
            Reason::UnknownFragment => "unknown_fragment",
            Reason::Ipv6Chain => "ipv6_chain",
            Reason::NotReady => "not_ready",
        }
    }

    pub fn from_u8(v: u8) -> Option<Reason> {
        REASONS.iter().copied().find(|r| *r as u8 == v)
    }

    /// Reasons that allow a packet; every other reason denies it.
    pub const fn allows(self) -> bool {
        (self as u8) < 8
    }
}

/// Index of a (device, verdict, reason) counter.
#[inline(always)]
pub const fn counter_index(device: u32, verdict: Verdict, reason: Reason) -> u32 {
    device * crate::consts::COUNTER_SLOTS_PER_DEVICE
        + (verdict as u32) * REASON_SLOTS
        + reason as u32
}
