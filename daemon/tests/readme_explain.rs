//! The README's `iotfence explain` example is what the command prints on
//! the shipped site example (offline: no kernel, no daemon).

use std::{path::Path, process::Command};

mod readme;

#[test]
fn the_readmes_explain_example_is_real() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    let mut lines = readme.lines().peekable();
    while let Some((cmd, want)) = readme::next(&mut lines, "explain") {
        let out = Command::new(env!("CARGO_BIN_EXE_iotfence"))
            .arg("explain")
            .args(cmd.split_whitespace())
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "`{cmd}`: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "`iotfence explain {cmd}`"
        );
        checked += 1;
    }
    assert!(checked >= 2, "the README shows {checked} explain examples");
}
