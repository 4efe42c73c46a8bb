//! Every committed fuzz input — the seed corpus `fuzz/seeds/<target>/` and the
//! crash inputs kept as regressions in `fuzz/regressions/<target>/` — run
//! through exactly the checks the libFuzzer targets make (`fuzz/checks.rs`),
//! on the normal toolchain, so they are tested without the fuzzer.
//!
//! The checks parse host names with a resolver that knows none (see
//! there): they fail to resolve at once instead of asking DNS.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 2] =
    [("icp_decode", checks::icp_decode), ("directive_values", checks::directive_values)];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly in `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs `check` on every file, and fails naming each file that panics.
fn run_all(check: Check, files: &[PathBuf]) {
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).unwrap();
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(failed.is_empty(), "fuzz checks failed for:\n  {}", failed.join("\n  "));
}

fn check_for(target: &str) -> Check {
    TARGETS.iter().find(|(name, _)| *name == target).unwrap_or_else(|| panic!("no fuzz target named {target:?}")).1
}

#[test]
fn seeds_pass_the_fuzz_checks() {
    for (target, check) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target));
        assert!(seeds.len() >= 10, "fuzz/seeds/{target} has only {} files", seeds.len());
        run_all(check, &seeds);
    }
}

/// Crash inputs the fuzzer found, kept in `fuzz/regressions/<target>/`.
#[test]
fn regressions_pass_the_fuzz_checks() {
    let Ok(dirs) = std::fs::read_dir(fuzz_dir().join("regressions")) else {
        return; // none found yet
    };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().unwrap().to_str().unwrap().to_owned();
        run_all(check_for(&target), &files(&dir));
    }
}

/// The ICP seeds are what their names say: `near_*` datagrams are the
/// near-valid ones the decoder must refuse, all others valid messages, so
/// the corpus starts the fuzzer on both sides of every check.
#[test]
fn icp_seeds_are_valid_or_near_valid_as_named() {
    let seeds = files(&fuzz_dir().join("seeds/icp_decode"));
    for seed in &seeds {
        let name = seed.file_name().unwrap().to_str().unwrap();
        let data = std::fs::read(seed).unwrap();
        let result = mod_icpquery::icp::Message::decode(&data);
        if name.starts_with("near_") {
            assert!(result.is_err(), "{name} decodes: {result:?}");
        } else {
            assert!(result.is_ok(), "{name} does not decode: {result:?}");
        }
    }
    assert!(seeds.iter().any(|s| s.ends_with("near_version3")));
}

/// The fuzz targets' resolver knows no name: a name fails at once, an
/// address needs no lookup.
#[test]
fn host_names_are_not_resolved() {
    let e = mod_icpquery::settings::values::peer("localhost:3130", &checks::NO_NAMES).unwrap_err();
    assert!(e.problem.starts_with("cannot resolve host"), "{e}");
    assert!(mod_icpquery::settings::values::peer("127.0.0.1:3130", &checks::NO_NAMES).is_ok());
}
