//! Global (not per-device) per-CPU counters: each one's slot in
//! `iotf1_global` and the metric it is exported as, defined once.

crate::codes! {
    /// A global counter; its number is its index in the per-CPU array.
    pub enum Global {
        EventsSent = 0 => "events_sent",
        EventsSuppressed = 1 => "events_suppressed",
        EventsRingFull = 2 => "events_ring_full",
        FlowInsertFailed = 3 => "flow_insert_failed",
        InboundFlows = 4 => "inbound_flows",
        /// DNS answers held for the daemon.
        DnsHeld = 5 => "dns_held",
        /// DNS queries copied to the daemon.
        DnsQueries = 6 => "dns_queries",
        /// DNS answers dropped because the DNS ring buffer was full.
        DnsRingFull = 7 => "dns_ring_full",
        /// DNS answers dropped because no daemon was there to learn (fail closed).
        DnsNoDaemon = 8 => "dns_no_daemon",
        /// DNS answers passed without learning: daemon gone with fail-open set.
        DnsFailOpen = 9 => "dns_fail_open",
        /// DNS answers passed without learning: fragment, GSO or over DNS_FRAME_MAX.
        DnsUnheld = 10 => "dns_unheld",
        /// DNS queries not copied because the DNS ring buffer was full.
        DnsQueryRingFull = 11 => "dns_query_ring_full",
        /// DNS queries not copied because their sender had spent its query budget.
        DnsQueryBudget = 12 => "dns_query_budget",
        /// DNS answers dropped as forged: from the address of a resolver on
        /// the router, but not sent by the router's own stack.
        DnsSpoofed = 13 => "dns_spoofed",
        /// DNS-over-TCP answer segments the router's stack sent again after
        /// the daemon had released them: delivered, not held a second time.
        DnsTcpResent = 14 => "dns_tcp_resent",
        /// Packets denied again from the denial cache, without a decision.
        DeniedCached = 15 => "denied_cached",
    }
}

/// A Prometheus counter family some global counters are exported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

const EVENTS: Family = Family {
    name: "iotfence_events_total",
    help: "Violation events in the kernel: sent to the daemon, or suppressed by the per-device rate limit.",
};
const RING_DROPS: Family = Family {
    name: "iotfence_ringbuf_drops_total",
    help: "Records lost because a ring buffer to the daemon was full (dns_answers: the answer was dropped too).",
};
const QUERY_BUDGET: Family = Family {
    name: "iotfence_dns_queries_over_budget_total",
    help: "DNS queries the kernel did not copy for learning: their device (an unknown one: its MAC) had spent its dns.queries_per_second budget.",
};
const FLOW_INSERT: Family = Family {
    name: "iotfence_flow_insert_failures_total",
    help: "Flow table inserts the kernel refused.",
};
const INBOUND: Family = Family {
    name: "iotfence_inbound_flows_total",
    help: "Flows opened towards devices under an inbound allowance.",
};
const FORGED: Family = Family {
    name: "iotfence_dns_answers_forged_total",
    help: "DNS answers dropped as forged: from the address of a resolver on the router, but routed in rather than sent by the router's own stack.",
};
const RESENT: Family = Family {
    name: "iotfence_dns_tcp_resends_total",
    help: "DNS-over-TCP answer segments the router's stack sent again after the daemon had released them (held segments count as unsent there): delivered without a second hold.",
};
const HELD: Family = Family {
    name: "iotfence_dns_answers_held_total",
    help: "DNS answers the kernel held for the daemon to learn from before delivery.",
};
const COPIED: Family = Family {
    name: "iotfence_dns_queries_copied_total",
    help: "DNS queries of devices the kernel copied to the daemon.",
};
const DENIED_CACHED: Family = Family {
    name: "iotfence_denial_cache_hits_total",
    help: "Denied (or audited) packets judged from the kernel's per-CPU denial cache: the same sender, destination, protocol and port denied before under the same policy and learned state.",
};
const UNHELD: Family = Family {
    name: "iotfence_dns_answers_unheld_total",
    help: "DNS answers not learned from: no_daemon (dropped, fail closed), fail_open (delivered), unsupported (fragment, GSO or too large; delivered).",
};

impl Global {
    /// The family this counter is a sample of, and its label in it (none
    /// for a family of one sample).
    pub const fn metric(self) -> (Family, Option<(&'static str, &'static str)>) {
        use Global::*;
        match self {
            EventsSent => (EVENTS, Some(("outcome", "sent"))),
            EventsSuppressed => (EVENTS, Some(("outcome", "suppressed"))),
            EventsRingFull => (RING_DROPS, Some(("ring", "events"))),
            DnsRingFull => (RING_DROPS, Some(("ring", "dns_answers"))),
            DnsQueryRingFull => (RING_DROPS, Some(("ring", "dns_queries"))),
            DnsQueryBudget => (QUERY_BUDGET, None),
            FlowInsertFailed => (FLOW_INSERT, None),
            InboundFlows => (INBOUND, None),
            DnsSpoofed => (FORGED, None),
            DnsTcpResent => (RESENT, None),
            DnsHeld => (HELD, None),
            DnsQueries => (COPIED, None),
            DnsNoDaemon => (UNHELD, Some(("reason", "no_daemon"))),
            DnsFailOpen => (UNHELD, Some(("reason", "fail_open"))),
            DnsUnheld => (UNHELD, Some(("reason", "unsupported"))),
            DeniedCached => (DENIED_CACHED, None),
        }
    }

    /// Its slot in the per-CPU array.
    #[inline(always)]
    pub const fn index(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::GLOBAL_COUNTERS;

    /// Every counter has a slot of the array, and a family's samples differ
    /// by their label (one without a label is alone in its family).
    #[test]
    fn slots_and_samples_are_distinct() {
        for g in Global::ALL {
            assert!(g.index() < GLOBAL_COUNTERS, "{g:?}");
            let (f, label) = g.metric();
            for h in Global::ALL {
                let (hf, hlabel) = h.metric();
                if h != g && hf.name == f.name {
                    assert!(
                        label.is_some() && hlabel.is_some() && label != hlabel,
                        "{g:?} / {h:?}"
                    );
                    assert_eq!(f, hf, "one help text per family");
                }
            }
        }
    }
}
