//! Turning a failed system call into a [`Report`] that names the step and the path.

use nix::errno::Errno;
use tsbox_core::{Report, Step};

pub type Result<T> = std::result::Result<T, Report>;

pub trait StepExt<T> {
    /// Tags an error with the step and what was being done.
    fn step(self, step: Step, detail: impl FnOnce() -> String) -> Result<T>;
    /// Tags an error with the step, the path involved and what was being done.
    fn step_path(self, step: Step, path: &str, detail: impl FnOnce() -> String) -> Result<T>;
}

impl<T> StepExt<T> for std::result::Result<T, Errno> {
    fn step(self, step: Step, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Report::new(step, e as i32).detail(detail()))
    }

    fn step_path(self, step: Step, path: &str, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Report::new(step, e as i32).path(path).detail(detail()))
    }
}

impl<T> StepExt<T> for std::io::Result<T> {
    fn step(self, step: Step, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Report::new(step, e.raw_os_error().unwrap_or(0)).detail(format!("{}: {e}", detail())))
    }

    fn step_path(self, step: Step, path: &str, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Report::new(step, e.raw_os_error().unwrap_or(0)).path(path).detail(detail()))
    }
}
