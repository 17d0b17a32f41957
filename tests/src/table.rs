//! The fixture table through one judging hook (BPF_PROG_TEST_RUN): every
//! step's verdict, counter and event is asserted. Run by the datapath tests
//! on this kernel and by the kernel matrix inside every booted kernel.

use iotfence_common::Verdict;

use crate::{
    fixtures::{self, Expect, Step},
    harness::{Action, Harness, Hook},
};

/// Replays the fixture table in order through `hook`: observer packets go
/// through TC egress (which never drops them), learned entries are
/// written, and every judged fixture `hook` can take goes to `judged`,
/// which runs it. One runner for the tests and the benchmarks, so both see
/// the same state at every step (a SYN's flow, a learned address).
pub fn replay(
    h: &mut Harness,
    hook: Hook,
    mut judged: impl FnMut(&mut Harness, &'static str, &[u8], &Expect) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for step in fixtures::table() {
        match step {
            Step::Observe { name, packet } => {
                let r = h.run(Hook::TcEgress, &packet);
                anyhow::ensure!(
                    r == crate::harness::TC_ACT_UNSPEC,
                    "{name}: the observer dropped it ({r})"
                );
            }
            Step::Learn {
                device,
                addr,
                rule,
                ttl_secs,
            } => h.learn(device, addr, rule, ttl_secs),
            Step::Judge { xdp_only: true, .. } if hook != Hook::Xdp => {}
            Step::Judge {
                name,
                packet,
                expect,
                ..
            } => judged(h, name, &packet, &expect)?,
        }
    }
    Ok(())
}

/// Panics, naming the fixture, at the first disagreement.
pub fn run_table(hook: Hook) {
    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let mut checked = 0;
    replay(&mut h, hook, |h, name, packet, expect| {
        let dev = h.device_id(expect.device);
        let before = h.count(dev, expect.verdict, expect.reason);
        let action = h.judge(hook, packet);
        let want = if expect.verdict == Verdict::Dropped {
            Action::Drop
        } else {
            Action::Pass
        };
        assert_eq!(action, want, "{hook:?} `{name}`: action");
        assert_eq!(
            h.count(dev, expect.verdict, expect.reason),
            before + 1,
            "{hook:?} `{name}`: counter ({}, {:?}, {:?}) did not count it",
            expect.device,
            expect.verdict,
            expect.reason
        );
        let events = h.events();
        if expect.verdict == Verdict::Allowed {
            assert!(
                events.is_empty(),
                "{hook:?} `{name}`: allowed packet raised {events:?}"
            );
        } else {
            assert_eq!(
                events.len(),
                1,
                "{hook:?} `{name}`: expected one violation event"
            );
            let e = events[0];
            assert_eq!(
                (e.device, e.verdict, e.reason),
                (dev, expect.verdict as u8, expect.reason as u8),
                "{hook:?} `{name}`: event"
            );
        }
        checked += 1;
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        checked >= 60,
        "the table shrank to {checked} judged packets"
    );
}
