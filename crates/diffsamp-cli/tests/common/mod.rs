//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `diffsamp` binary with `args`.
pub fn diffsamp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffsamp"))
        .args(args)
        .output()
        .expect("the diffsamp binary runs")
}

/// A fresh, empty scratch directory named after the test process and `name`.
pub fn tmp(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffsamp-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The standard error of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The shipped `configs/*.toml` whose file stem satisfies `keep`, sorted.
pub fn shipped_configs(keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_stem().is_some_and(|n| keep(&n.to_string_lossy()))
        })
        .collect();
    out.sort();
    out
}
