//! TC without TCX links (kernels before 6.6), on this kernel: the daemon is
//! told the kernel lacks TCX, `bpf_xdp_load_bytes` and the coarse clock
//! (`IOTFENCE_PRETEND_MISSING`), as Debian 11's 5.10 does, and must then
//! attach cls_bpf filters to a clsact qdisc at its fixed handles, beside an
//! existing user's filter; keep them through SIGKILL; swap its programs into
//! them on restart (same filters, new programs, counters kept); and remove
//! exactly its own on `detach`. The kernel matrix (`kernels.rs`) runs the
//! same paths on the real old kernels.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use iotfence_common::{consts::prog_names, Reason, Verdict};
use iotfence_tests::lab::{daemon_binary, enter_ns, Lab, CAMERA, CAMERA_POLICY, SERVER_A};

const CAM: u32 = 1;
const T: Duration = Duration::from_millis(1500);

/// (priority, handle, bpf name, program id) of every filter on iot0's `hook`.
fn filters(lab: &Lab, hook: &str) -> Vec<(u64, String, String, u64)> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.router.name])
        .args(["tc", "-j", "filter", "show", "dev", "iot0", hook])
        .output()
        .expect("running tc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tc -j output");
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let o = f.get("options")?;
            Some((
                f["pref"].as_u64()?,
                o["handle"].as_str()?.to_string(),
                o["bpf_name"].as_str().unwrap_or("").to_string(),
                o["prog"]["id"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

fn ours<'a>(
    fs: &'a [(u64, String, String, u64)],
    name: &str,
) -> Vec<&'a (u64, String, String, u64)> {
    fs.iter().filter(|f| f.2.starts_with(name)).collect()
}

fn enforces(lab: &Lab) {
    let cam = lab.device("cam-1");
    assert!(cam.connect(SERVER_A, 443, T), "allowed connection failed");
    assert!(!cam.connect(SERVER_A, 22, T), "forbidden port connected");
}

#[test]
fn clsact_filters_attach_beside_others_survive_sigkill_swap_and_detach() {
    // Only this test runs in this binary: the daemons it starts inherit it.
    std::env::set_var(
        iotfence::kernel::probe::PRETEND_MISSING_ENV,
        "tcx,xdp_load_bytes,coarse_clock",
    );
    let mut lab = Lab::build(&[CAMERA], &[443, 22]).expect("building the lab");
    // Another user's clsact and filter, which must be left alone: classic
    // BPF returning 0 (no match, so packets go on to later filters).
    lab.router
        .exec(&["tc", "qdisc", "add", "dev", "iot0", "clsact"])
        .unwrap();
    lab.router
        .exec(&[
            "tc",
            "filter",
            "add",
            "dev",
            "iot0",
            "egress",
            "prio",
            "9",
            "handle",
            "9",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
            "classid",
            "1:9",
        ])
        .unwrap();
    let foreign = filters(&lab, "egress");
    assert_eq!(foreign.len(), 1, "{foreign:?}");

    let cfg = lab.write_config("xdp", CAMERA_POLICY).unwrap();
    lab.start_daemon(&cfg).expect("starting iotfence");
    let eg = filters(&lab, "egress");
    let ing = filters(&lab, "ingress");
    let eg_ours = ours(&eg, prog_names::TC_EGRESS);
    let q_ours = ours(&ing, prog_names::TC_QUERIES);
    assert_eq!(eg_ours.len(), 1, "egress filters: {eg:?}");
    assert_eq!((eg_ours[0].0, eg_ours[0].1.as_str()), (1, "0x10f70003"));
    // XDP cannot copy DNS queries without bpf_xdp_load_bytes: TC does.
    assert_eq!(q_ours.len(), 1, "ingress filters: {ing:?}");
    assert_eq!(q_ours[0].1, "0x10f70002");
    assert!(eg.contains(&foreign[0]), "the foreign filter was touched");
    assert!(lab.pins.path.join("links/iot0_tc_egress_nl").exists());
    assert!(!lab.pins.path.join("links/iot0_tc_egress").exists());
    let first_prog = eg_ours[0].3;
    enforces(&lab);

    // SIGKILL: the filters stay, and so does enforcement.
    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;
    assert_eq!(
        ours(&filters(&lab, "egress"), prog_names::TC_EGRESS)[0].3,
        first_prog
    );
    enforces(&lab);
    let counted = lab.counter(CAM, Verdict::Allowed, Reason::Rule);

    // Restart: the programs the kernel verified are adopted, in the
    // same filter.
    lab.start_daemon(&cfg).expect("restarting iotfence");
    let eg = filters(&lab, "egress");
    let eg_ours = ours(&eg, prog_names::TC_EGRESS);
    assert_eq!(eg_ours.len(), 1, "a restart must not add a filter: {eg:?}");
    assert_eq!(eg_ours[0].3, first_prog, "the verified program adopted");
    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;

    // Restart with another load-time setting (so programs verified anew):
    // the same filter (priority, handle) gets the new program.
    let cfg = lab
        .write_config_with("xdp", CAMERA_POLICY, "dns:\n  query_burst: 50\n")
        .unwrap();
    lab.start_daemon(&cfg).expect("restarting iotfence");
    let eg = filters(&lab, "egress");
    let eg_ours = ours(&eg, prog_names::TC_EGRESS);
    assert_eq!(eg_ours.len(), 1, "a restart must not add a filter: {eg:?}");
    assert_eq!(eg_ours[0].1, "0x10f70003");
    assert_ne!(eg_ours[0].3, first_prog, "the program was not swapped in");
    assert_eq!(
        ours(&filters(&lab, "ingress"), prog_names::TC_QUERIES).len(),
        1
    );
    enforces(&lab);
    assert!(
        lab.counter(CAM, Verdict::Allowed, Reason::Rule) > counted,
        "counters go on across the swap"
    );

    // Detach removes ours and nothing else.
    lab.daemon.as_mut().unwrap().terminate().unwrap();
    lab.daemon = None;
    // Only the network namespace: `ip netns exec` remounts /sys, hiding
    // the bpffs with the pins.
    let ns = std::fs::File::open(lab.router.path()).unwrap();
    let mut detach = Command::new(daemon_binary());
    detach.args(["detach", "--pin-dir"]).arg(&lab.pins.path);
    unsafe { detach.pre_exec(move || enter_ns(&ns)) };
    let out = detach.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(filters(&lab, "egress"), foreign, "{said}");
    assert!(ours(&filters(&lab, "ingress"), "iotfence").is_empty());
}
