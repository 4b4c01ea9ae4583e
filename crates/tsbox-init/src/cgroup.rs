//! Placing the container in its cgroup where clone3 could not (v1 and hybrid
//! hierarchies, or a kernel without CLONE_INTO_CGROUP).
//!
//! Moving a process between cgroups waits for an RCU grace period on most
//! kernels (the write side of cgroup_threadgroup_rwsem), a few milliseconds
//! that do not depend on us. The helper pays it while the child builds its
//! mounts, and tells the child when it is done; Node is not involved.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{write, Pid};
use tsbox_core::{Report, Step};

use crate::trace::{trace, Trace};

/// The opened `cgroup.procs` files, one per hierarchy.
pub struct Procs(Vec<(String, OwnedFd)>);

impl Procs {
    /// Opens every file now, while paths are still the host's (before any join).
    pub fn open(paths: &[String]) -> Result<Procs, Report> {
        paths
            .iter()
            .map(|p| {
                open(p.as_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .map(|fd| (p.clone(), fd))
                    .map_err(|e| {
                        Report::new(Step::Cgroup, e as i32)
                            .path(p.clone())
                            .detail("open the container's cgroup.procs to place it")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Procs)
    }

    /// Moves `pid` (the whole process) into every hierarchy. A child that has
    /// already exited is not an error here: the monitor reports why it did.
    pub fn place(&self, pid: Pid, tr: &Trace) -> Result<(), Report> {
        let text = pid.to_string();
        for (path, fd) in &self.0 {
            match write(fd.as_fd(), text.as_bytes()) {
                Ok(_) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    return Err(Report::new(Step::Cgroup, e as i32)
                        .path(path.clone())
                        .detail(format!("place process {pid} in the container's cgroup")))
                }
            }
        }
        trace!(
            tr,
            "cgroup: pid {pid} placed in {}",
            self.0
                .iter()
                .map(|(p, _)| p.trim_end_matches("/cgroup.procs"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    }
}
