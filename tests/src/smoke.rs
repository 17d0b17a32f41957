//! The lab smoke check the kernel matrix runs on every kernel (and the
//! host runs too): on one attach mode, a device allowed by a name learned
//! from a held DNS answer, denied elsewhere, an audited device passing;
//! SIGKILL keeps enforcement; a restart adopts the pins (the verified
//! programs too) and enforces again.

use anyhow::{ensure, Context};
use iotfence_common::{Reason, Verdict};

use crate::scenario::{self, Outcome, Site, ALLOWED_ADDR, RAW_ADDR, RAW_PORT, SENSOR};

const SENSOR_ID: u32 = 1;
const CAMERA_ID: u32 = 2;

fn expect_enforced(o: &Outcome) -> anyhow::Result<()> {
    ensure!(
        o.allowed_connected,
        "the learned name did not connect: {o:?}"
    );
    ensure!(
        !o.evil_connected,
        "a name outside the profile connected: {o:?}"
    );
    ensure!(
        !o.raw_connected,
        "an address never resolved connected: {o:?}"
    );
    ensure!(o.audited_connected, "the audited device was blocked: {o:?}");
    Ok(())
}

pub fn run(attach: &str) -> anyhow::Result<()> {
    let mut site: Site = scenario::start(attach, "").context("starting the lab")?;
    let log = |site: &Site| {
        site.lab
            .daemon
            .as_ref()
            .map(|d| d.log())
            .unwrap_or_default()
    };
    let o = scenario::traffic(&site)?;
    expect_enforced(&o).with_context(|| log(&site))?;
    let lab = &site.lab;
    ensure!(
        lab.counter(SENSOR_ID, Verdict::Allowed, Reason::Learned) >= 1,
        "the allowed connection was not allowed by a learned address"
    );
    ensure!(
        lab.dropped(SENSOR_ID) >= 2,
        "the denied connections were not counted"
    );
    ensure!(
        lab.counter(CAMERA_ID, Verdict::Audited, Reason::NotAllowed) >= 1,
        "the audited connection was not counted"
    );

    // SIGKILL: enforcement stays. (DNS answers now fail closed, so only
    // what was learned and what was denied are tried.)
    site.lab.daemon.as_mut().unwrap().kill();
    site.lab.daemon = None;
    let sensor = site.lab.device(SENSOR.name);
    let t = std::time::Duration::from_secs(1);
    ensure!(
        sensor.connect(ALLOWED_ADDR, 443, t),
        "after SIGKILL, the learned address no longer connects"
    );
    ensure!(
        !sensor.connect(RAW_ADDR, RAW_PORT, t),
        "after SIGKILL, a denied address connected"
    );

    // A restart adopts the pinned datapath and enforces as before.
    let cfg = site.lab.dir.join("iotfence.yaml");
    site.lab.start_daemon(&cfg).context("restarting")?;
    let restarted = log(&site);
    ensure!(
        restarted.contains("adopted=true"),
        "not adopted:\n{restarted}"
    );
    // ... and the programs this kernel verified for the first start, as
    // they are (issue 17, item 3: no verifier run on a restart).
    ensure!(
        restarted.contains("adopting the pinned programs"),
        "programs verified again:\n{restarted}"
    );
    let o = scenario::traffic(&site)?;
    expect_enforced(&o).with_context(|| log(&site))?;
    Ok(())
}
