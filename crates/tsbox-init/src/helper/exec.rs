//! Exec into a running container, done by its monitor for a control
//! connection. Three processes, as runc's exec:
//!
//! - the monitor forks an intermediate, still in the host's namespaces (with
//!   `reparent`, with CLONE_PARENT: then the process, cloned the same way,
//!   is the child of the monitor's parent, a subreaper such as conmon that
//!   waits for it, as it waits for a runc exec'd process);
//! - the intermediate joins the container's user namespace (where it then may
//!   join the others) and its pid namespace, and clones the process with
//!   CLONE_PARENT, so the monitor is its parent and reaps it (and, on v2, with
//!   CLONE_INTO_CGROUP, straight into the container's cgroup); it tells the
//!   monitor the pid and exits;
//! - the process joins the remaining namespaces ([`crate::child::join`]),
//!   waits until the monitor has placed it in the container's v1 cgroups,
//!   prepares itself as its [`ProcessPlan`] says and execs.
//!
//! Every namespace is joined through a descriptor the container's PID 1 gave
//! at `ready`: no pid is named, and no ptrace check against PID 1 applies.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;
use tsbox_core::{Namespace, ProcessPlan, Report, Step, ToChild};

use super::clone::{clone_container, Forked};
use crate::channel::Channel;
use crate::child;
use crate::trace::Trace;

/// A process exec'd into the container, as the monitor tracks it.
pub struct Process {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
    /// The monitor's end of the process's channel (reports, its pty).
    pub chan: Channel,
}

/// Where the container's cgroup is, for its exec'd processes.
pub struct Cgroup<'a> {
    /// The v2 directory (CLONE_INTO_CGROUP).
    pub dir: Option<RawFd>,
    /// The `cgroup.procs` files to write the pid to where clone3 did not place it.
    pub procs: &'a [String],
}

/// Starts `process` in the container. `stdio` are the caller's stdin, stdout
/// and stderr (empty with a tty: the process makes its own in the container).
/// With `reparent` the process is the child of the monitor's parent.
pub fn spawn(
    process: &ProcessPlan,
    stdio: &[OwnedFd],
    ns: &[(Namespace, OwnedFd)],
    cgroup: &Cgroup<'_>,
    reparent: bool,
    tr: Trace,
) -> Result<Process, Report> {
    let fail = |e: nix::errno::Errno, what: &str| Report::new(Step::Join, e as i32).detail(what.to_string());
    let (mine, theirs) = Channel::pair().map_err(|e| fail(e, "create the exec channel"))?;
    let flags = if reparent { libc::CLONE_PARENT as u64 } else { 0 };
    match clone_container(flags, None).map_err(|e| fail(e, "fork the exec intermediate"))? {
        Forked::Child => {
            drop(mine);
            intermediate(process, stdio, ns, cgroup, theirs, tr)
        }
        Forked::Parent { pid: child, .. } => {
            drop(theirs);
            // The intermediate exits once it has cloned the process; the
            // monitor's parent reaps a reparented one.
            let status = if reparent {
                None
            } else {
                Some(nix::sys::wait::waitpid(child, None))
            };
            let pid = match mine.recv::<Intermediate>() {
                Ok(Some(Intermediate::Cloned { pid })) => Pid::from_raw(pid),
                // What it could not do (join the user or pid namespace, clone), as it said.
                Ok(Some(Intermediate::Failed(r))) => return Err(r),
                Ok(None) => {
                    let how = status.map_or_else(|| "ended".to_string(), |s| format!("ended ({s:?})"));
                    return Err(Report::new(Step::Join, 0).detail(format!("the exec intermediate {how} without a process")));
                }
                Err(e) => return Err(Report::new(Step::Join, e.errno()).detail(e.to_string())),
            };
            let pidfd = pidfd_open(pid);
            if !cgroup.procs.is_empty() && cgroup.dir.is_none() {
                if let Err(r) = super::cgroup::place(cgroup.procs, pid, &tr) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    // Reaped here when it is the monitor's child (CLONE_PARENT), as nobody tracks it.
                    if !reparent {
                        super::monitor::reap(pid);
                    }
                    return Err(r);
                }
            }
            let _ = mine.send(&ToChild::Placed);
            Ok(Process { pid, pidfd, chan: mine })
        }
    }
}

/// The intermediate's one message to the monitor: the process it cloned, or
/// why it could not.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
enum Intermediate {
    Cloned { pid: i32 },
    Failed(Report),
}

/// Reports `r` to the monitor and ends the intermediate.
fn intermediate_failed(chan: &Channel, r: Report) -> ! {
    let _ = chan.send(&Intermediate::Failed(r));
    // SAFETY: ends the intermediate without running anything else.
    unsafe { libc::_exit(125) }
}

/// The intermediate: user and pid namespaces, then the process. Never returns.
fn intermediate(process: &ProcessPlan, stdio: &[OwnedFd], ns: &[(Namespace, OwnedFd)], cgroup: &Cgroup<'_>, chan: Channel, tr: Trace) -> ! {
    let step = |which: Namespace| -> Result<(), Report> {
        if let Some((_, fd)) = ns_fd(ns, which) {
            setns(fd, CloneFlags::empty()).map_err(|e| {
                Report::new(Step::Join, e as i32)
                    .path(which.name())
                    .detail(format!("join the container's {} namespace", which.name()))
                    .hint("the container must still be running")
            })?;
        }
        Ok(())
    };
    if let Err(r) = step(Namespace::User).and_then(|()| step(Namespace::Pid)) {
        intermediate_failed(&chan, r);
    }
    match clone_container(libc::CLONE_PARENT as u64, cgroup.dir) {
        Err(e) => intermediate_failed(&chan, Report::new(Step::Clone, e as i32).detail("clone the exec'd process")),
        Ok(Forked::Parent { pid, .. }) => {
            let _ = chan.send(&Intermediate::Cloned { pid: pid.as_raw() });
            // SAFETY: ends the intermediate without running anything else.
            unsafe { libc::_exit(0) }
        }
        Ok(Forked::Child) => exec_process(process, stdio, ns, chan, tr),
    }
}

/// The exec'd process itself. Never returns.
fn exec_process(process: &ProcessPlan, stdio: &[OwnedFd], ns: &[(Namespace, OwnedFd)], chan: Channel, tr: Trace) -> ! {
    for (i, fd) in stdio.iter().enumerate().take(3) {
        // SAFETY: dup2 onto this process's own stdio.
        unsafe { libc::dup2(fd.as_raw_fd(), i as RawFd) };
    }
    // Placed in the container's cgroup by the monitor (or by clone3).
    match chan.recv::<ToChild>() {
        Ok(Some(ToChild::Placed)) => {}
        // SAFETY: the monitor is gone: nobody to report to.
        _ => unsafe { libc::_exit(125) },
    }
    let result = child::join::join(ns).and_then(|()| child::process::prepare(process, &chan, child::process::Context::exec(), tr));
    let report = match result {
        Ok(cmd) => cmd.exec(),
        Err(r) => r,
    };
    child::fail(&chan, report)
}

fn ns_fd(ns: &[(Namespace, OwnedFd)], which: Namespace) -> Option<&(Namespace, OwnedFd)> {
    ns.iter().find(|(n, _)| *n == which)
}

fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a new descriptor from the kernel.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
