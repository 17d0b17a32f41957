//! The device capacity (`max_devices`) bounds the policy's devices, with
//! the first device beyond it as the located error.

use std::path::Path;

use crate::config;

fn policy(devices: usize) -> String {
    let mut y = String::from("profiles:\n  cam:\n    use: [dns]\ndevices:\n");
    for i in 0..devices {
        y += &format!(
            "  - name: d{i}\n    mac: 02:00:00:00:{:02x}:{:02x}\n    profile: cam\n",
            i >> 8,
            i & 0xff
        );
    }
    y
}

fn compile(devices: usize, max_devices: u32) -> Result<usize, Vec<String>> {
    let cfg = config::parse(
        Path::new("c.yaml"),
        &format!("interfaces: [iot0]\npolicy: p.yaml\nresolvers: [192.0.2.1]\nmax_devices: {max_devices}\n"),
    )
    .unwrap();
    super::compile(Path::new("p.yaml"), &policy(devices), &cfg)
        .map(|c| c.devices.len())
        .map_err(|d| {
            d.iter()
                .filter(|d| d.severity == crate::diag::Severity::Error)
                .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
                .collect()
        })
}

#[test]
fn devices_beyond_max_devices_are_refused_where_they_start() {
    assert_eq!(compile(15, 16), Ok(15));
    let e = compile(17, 16).unwrap_err();
    // Device 16 (d15) starts on line 5 + 3 * 15; its name at column 11.
    assert_eq!(
        e,
        ["p.yaml:50:11: device `d15` is device 16; max_devices: 16 leaves room for 15 (id 0 is unknown devices)"]
    );
    // The default holds 2047, a larger capacity more.
    assert!(compile(2048, 2048).is_err());
    assert_eq!(compile(2048, 2049), Ok(2048));
}
