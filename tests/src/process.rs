//! Child processes with their logs in files, stopped by PID when dropped.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`ProcessGuard`]'s `Drop` waits after SIGTERM before it sends SIGKILL.
pub const DROP_GRACE: Duration = Duration::from_secs(5);

/// Starts `command` as `name` with stdin closed and stdout/stderr written to
/// `<log_dir>/<name>.stdout.log` and `<log_dir>/<name>.stderr.log`.
///
/// The child leads its own process group, so wrappers that start helpers (such as a
/// Python entry point) are stopped together with their children.
pub fn spawn_logged(name: &str, mut command: Command, log_dir: &Path) -> Result<ProcessGuard> {
    std::fs::create_dir_all(log_dir)
        .map_err(|e| Error::new(format!("cannot create log dir {}: {e}", log_dir.display())))?;
    let stdout_path = log_dir.join(format!("{name}.stdout.log"));
    let stderr_path = log_dir.join(format!("{name}.stderr.log"));
    let open = |path: &Path| {
        File::create(path)
            .map_err(|e| Error::new(format!("cannot create log file {}: {e}", path.display())))
    };
    command
        .stdin(Stdio::null())
        .stdout(open(&stdout_path)?)
        .stderr(open(&stderr_path)?)
        .process_group(0);
    let program = format!("{command:?}");
    let child = command
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {name} ({program}): {e}")))?;
    Ok(ProcessGuard {
        name: name.to_string(),
        pid: child.id(),
        child,
        stdout_path,
        stderr_path,
        exit_status: None,
    })
}

/// Owns a child process started by [`spawn_logged`].
///
/// Dropping the guard stops the process by its PID: SIGTERM, then SIGKILL (to the
/// process and its process group) if it has not exited within [`DROP_GRACE`]. When
/// the drop happens during a panic (a failing test), the tail of the process' logs is
/// printed to stderr so the failure can be understood from the test output.
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    pid: u32,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    exit_status: Option<ExitStatus>,
}

impl ProcessGuard {
    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's PID (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit_status = Some(status);
        }
        self.exit_status
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM to the process and waits up to `grace` for it to exit. Returns the
    /// exit status, or an error (after SIGKILL) if it did not stop in time.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_exit_status() {
            self.signal_group(libc::SIGKILL);
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        match self.wait_timeout(grace) {
            Some(status) => {
                // Leftover helpers of a wrapper process, if any.
                self.signal_group(libc::SIGKILL);
                Ok(status)
            }
            None => {
                self.kill_hard();
                Err(Error::new(format!(
                    "{} (pid {}) did not exit within {grace:?} of SIGTERM; killed it\n{}",
                    self.name,
                    self.pid,
                    self.log_tail(40)
                )))
            }
        }
    }

    /// Sends SIGTERM and requires a clean exit (status 0) within `grace`.
    pub fn stop_cleanly(&mut self, grace: Duration) -> Result<()> {
        let status = self.terminate(grace)?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{} (pid {}) did not exit cleanly after SIGTERM: {status}\n{}",
                self.name,
                self.pid,
                self.log_tail(40)
            )))
        }
    }

    /// `kill -9`: SIGKILL to the process and its process group, then reap it.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        if self.try_exit_status().is_none() {
            self.signal(libc::SIGKILL);
        }
        self.signal_group(libc::SIGKILL);
        let status = self.wait_timeout(Duration::from_secs(10));
        if status.is_none() {
            // SIGKILL cannot be ignored; a blocking wait is safe here.
            if let Ok(status) = self.child.wait() {
                self.exit_status = Some(status);
            }
        }
        self.exit_status
    }

    /// Sends SIGINT (Ctrl-C) to the process without waiting.
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// The signal that ended the process, if it was ended by one (as opposed to exiting by itself).
    pub fn killed_by_signal(&mut self) -> Option<i32> {
        self.try_exit_status().and_then(|s| s.signal())
    }

    /// The captured stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The captured stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The last `lines` lines of stderr and stdout, labelled, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tail = |text: String| {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        format!(
            "--- {name} stderr ({}) ---\n{}\n--- {name} stdout ({}) ---\n{}\n--- end of {name} logs ---",
            self.stderr_path.display(),
            tail(self.stderr()),
            self.stdout_path.display(),
            tail(self.stdout()),
            name = self.name,
        )
    }

    /// Waits up to `timeout` for a line containing `needle` in stderr or stdout and
    /// returns that line.
    pub fn wait_for_log_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = [self.stderr(), self.stdout()]
                .iter()
                .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
                .find(|line| line.contains(needle));
            if let Some(line) = found {
                return Ok(line);
            }
            if let Some(status) = self.try_exit_status() {
                return Err(Error::new(format!(
                    "{} exited ({status}) without logging {needle:?}\n{}",
                    self.name,
                    self.log_tail(40)
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "{} did not log {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: as above; a negative pid addresses the child's own process group.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(60));
        }
        if self.try_exit_status().is_none() {
            let _ = self.terminate(DROP_GRACE);
        } else {
            self.signal_group(libc::SIGKILL);
        }
    }
}
