//! The userspace model (`iotfence::explain::model`) agrees with the kernel
//! judge on every committed input of the `datapath` fuzz corpus (the
//! fixture table is `explain.rs`'s, through both judging hooks).

use std::path::Path;

use iotfence_tests::{differential::Differential, privileged::require_root};

/// Every committed corpus input, deterministically (the fuzz target runs
/// the same `run_input`).
#[test]
fn model_agrees_on_the_datapath_corpus() {
    require_root();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/datapath");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "{}: only {} inputs",
        dir.display(),
        files.len()
    );
    let mut d = Differential::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        d.run_input(&data)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert!(d.tally.ran > files.len() as u64, "{:?}", d.tally);
    eprintln!("{} corpus inputs, {:?}", files.len(), d.tally);
}
