//! The seam between the helper's phase machine ([`super::setup`]) and the
//! system calls it makes. [`Kernel`] is the real one. The tests' recording
//! host (helper/tests.rs) writes down each call and answers as it is told,
//! so the phases run in an ordinary `cargo test`, without root, and without
//! cloning anything.
//!
//! The channels are not behind the seam: they are socketpairs, which a test
//! makes as easily as the helper does.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;
use tsbox_core::{IdMaps, JoinedNamespace, Namespace, Report, SandboxPlan, Step, TimeOffsets};

use super::clone::{clone_container, Forked};
use super::monitor::Container;
use super::{cgroup, idmap, report};
use crate::channel::Channel;
use crate::trace::{trace, Trace};

/// The container's first process, seen from the helper after phase 2.
pub struct Cloned {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
    /// It started in its v2 cgroup (CLONE_INTO_CGROUP).
    pub placed: bool,
}

/// What the helper's phases 1 to 6 ask of the system.
pub trait Host {
    /// The helper's parent, to check that whoever started it is still there.
    fn parent_pid(&self) -> i32;
    /// Whether the helper runs as root (v1 checks a mover's ids otherwise).
    fn is_root(&self) -> bool;
    /// Leaves the caller's process tree (a detached container).
    fn detach(&mut self) -> Result<(), Report>;
    /// The v2 cgroup directory for CLONE_INTO_CGROUP; None to place by pid.
    fn open_cgroup(&mut self, dir: &str) -> Option<OwnedFd>;
    /// Phase 2: clones the container's first process with `flags`, which
    /// closes its copies of `parent_only` (the helper's ends of the
    /// channels), runs the child's side of the plan with `child`, and never
    /// comes back.
    fn clone_child(
        &mut self,
        plan: &SandboxPlan,
        flags: u64,
        cgroup: Option<RawFd>,
        child: Channel,
        parent_only: &[RawFd],
        tr: Trace,
    ) -> Result<Cloned, Errno>;
    /// Phase 3, the helper's part: `/proc/PID/{setgroups,uid_map,gid_map}`.
    fn write_maps(&mut self, pid: Pid, maps: &IdMaps, tr: &Trace) -> Result<(), Report>;
    /// Phase 4 by pid: writes `pid` to each `cgroup.procs`.
    fn place(&mut self, procs: &[String], pid: Pid, tr: &Trace) -> Result<(), Report>;
    /// Phase 4 by the helper's own thread: writes `0` to each v1 `tasks`
    /// (`CgroupPhase::Enter`'s, into the container's cgroups or back home).
    fn move_self(&mut self, tasks: &[String]) -> Result<(), Report>;
    /// The idmapped trees that travel with `go`.
    fn idmapped_trees(&mut self, plan: &SandboxPlan, pid: Pid, tr: &Trace) -> Result<Vec<OwnedFd>, Report>;
    /// A setup that failed: kills the container's first process and reaps it.
    fn kill(&mut self, c: &Container);
    /// Enters the namespaces the container joins rather than makes, before
    /// the clone: each checked to be of its type first (NS_GET_NSTYPE).
    fn join_namespaces(&mut self, join: &[JoinedNamespace], tr: &Trace) -> Result<(), Report>;
    /// A new time namespace for the children to come, with these offsets
    /// written before any process is in it.
    fn time_namespace(&mut self, offsets: &TimeOffsets, tr: &Trace) -> Result<(), Report>;
    /// Makes this process not dumpable, and so every child it clones from
    /// now on (they inherit the flag).
    fn not_dumpable(&mut self);
}

/// The real system calls.
pub struct Kernel;

impl Host for Kernel {
    fn parent_pid(&self) -> i32 {
        nix::unistd::getppid().as_raw()
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// The helper forks, the parent exits at once (the caller reaps it), and
    /// the child, orphaned to init, is the monitor that keeps the container.
    fn detach(&mut self) -> Result<(), Report> {
        let before = nix::unistd::getpid();
        // SAFETY: this process is single-threaded.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => {
                // SAFETY: ends the parent without running anything else.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Child) => {
                // Until the parent has gone, it is ours (and a reparented
                // PID 1's, by CLONE_PARENT): wait for the new parent, the
                // caller's subreaper or init, for a second at most.
                for _ in 0..1000 {
                    if nix::unistd::getppid() != before {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(())
            }
            Err(e) => Err(report(Step::Clone, e as i32, "fork the detached monitor")),
        }
    }

    fn open_cgroup(&mut self, dir: &str) -> Option<OwnedFd> {
        nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    }

    fn clone_child(
        &mut self,
        plan: &SandboxPlan,
        flags: u64,
        cgroup: Option<RawFd>,
        child: Channel,
        parent_only: &[RawFd],
        tr: Trace,
    ) -> Result<Cloned, Errno> {
        match clone_container(flags, cgroup)? {
            Forked::Child => {
                // The child's copies: its stack never unwinds (child::run
                // does not return), so their owners never close them. The
                // cgroup directory too, once clone3 is done with it: a
                // directory of the host's cgroupfs, which the container's
                // process must never hold (CVE-2024-21626).
                for fd in parent_only.iter().chain(cgroup.as_ref()) {
                    let _ = nix::unistd::close(*fd);
                }
                crate::child::run(plan, child, tr)
            }
            Forked::Parent { pid, pidfd, placed } => Ok(Cloned { pid, pidfd, placed }),
        }
    }

    fn write_maps(&mut self, pid: Pid, maps: &IdMaps, tr: &Trace) -> Result<(), Report> {
        idmap::write_maps(pid, maps, tr)
    }

    fn place(&mut self, procs: &[String], pid: Pid, tr: &Trace) -> Result<(), Report> {
        cgroup::place(procs, pid, tr)
    }

    fn move_self(&mut self, tasks: &[String]) -> Result<(), Report> {
        cgroup::move_self(tasks)
    }

    fn idmapped_trees(&mut self, plan: &SandboxPlan, pid: Pid, tr: &Trace) -> Result<Vec<OwnedFd>, Report> {
        idmap::trees(plan, pid, tr)
    }

    fn kill(&mut self, c: &Container) {
        c.signal(libc::SIGKILL);
        c.reap();
    }

    fn time_namespace(&mut self, offsets: &TimeOffsets, tr: &Trace) -> Result<(), Report> {
        // CLONE_NEWTIME: the children's time namespace, not this process's.
        const CLONE_NEWTIME: libc::c_int = 0x80;
        // SAFETY: unshare with a flag; no memory is passed.
        if unsafe { libc::unshare(CLONE_NEWTIME) } != 0 {
            return Err(Report::new(Step::Clone, Errno::last() as i32)
                .detail("unshare a time namespace (CLONE_NEWTIME)")
                .hint("time namespaces need Linux 5.6 or later"));
        }
        let mut lines = String::new();
        for (name, o) in [("monotonic", offsets.monotonic), ("boottime", offsets.boottime)] {
            if let Some(o) = o {
                lines.push_str(&format!("{name} {} {}\n", o.secs, o.nanosecs));
            }
        }
        if !lines.is_empty() {
            std::fs::write("/proc/self/timens_offsets", &lines).map_err(|e| {
                Report::new(Step::Clone, e.raw_os_error().unwrap_or(0))
                    .path("/proc/self/timens_offsets")
                    .detail(format!("write the clocks' offsets ({})", lines.trim().replace('\n', ", ")))
            })?;
        }
        trace!(
            tr,
            "time namespace: {}",
            if lines.is_empty() {
                "no offsets".into()
            } else {
                lines.trim().replace('\n', ", ")
            }
        );
        Ok(())
    }

    fn not_dumpable(&mut self) {
        let _ = nix::sys::prctl::set_dumpable(false);
    }

    fn join_namespaces(&mut self, join: &[JoinedNamespace], tr: &Trace) -> Result<(), Report> {
        for j in join {
            // Node refuses these; refused here too (a user namespace decides
            // every id, a mount namespace's root would be pivoted for all in it).
            if matches!(j.ns, Namespace::User | Namespace::Mount) {
                return Err(Report::new(Step::Join, libc::EINVAL)
                    .path(j.path.clone())
                    .detail(format!("joining a {} namespace is not supported", j.ns.name())));
            }
            // Non-blocking, no controlling terminal: a path that is no
            // namespace (a fifo, a tty) is refused below, not waited on.
            let fd = nix::fcntl::open(
                j.path.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| {
                Report::new(Step::Join, e as i32)
                    .path(j.path.clone())
                    .detail(format!("open the {} namespace to join", j.ns.name()))
            })?;
            // On nsfs only (NSFS_MAGIC), before any ioctl reaches what it is.
            const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
            let on_nsfs = nix::sys::statfs::fstatfs(&fd)
                .map(|s| s.filesystem_type().0 as libc::c_long == NSFS_MAGIC)
                .unwrap_or(false);
            // NS_GET_NSTYPE (_IO(0xb7, 0x3)): the CLONE_NEW* flag of the namespace.
            // SAFETY: an ioctl without an argument on a descriptor we own.
            let kind = if on_nsfs {
                unsafe { libc::ioctl(fd.as_raw_fd(), 0xb703 as _) }
            } else {
                -1
            };
            if kind < 0 || kind as u64 != j.ns.clone_flag() {
                let is = Namespace::ALL
                    .iter()
                    .find(|n| kind >= 0 && n.clone_flag() == kind as u64)
                    .map(|n| n.name());
                return Err(Report::new(Step::Join, libc::EINVAL)
                    .path(j.path.clone())
                    .detail(match is {
                        Some(other) => format!("is a {other} namespace, not a {} namespace", j.ns.name()),
                        None => format!("is not a namespace (joining it as the {} namespace)", j.ns.name()),
                    })
                    .hint("linux.namespaces: each path must name a namespace of its type (/proc/PID/ns/TYPE)"));
            }
            let flag = nix::sched::CloneFlags::from_bits_truncate(j.ns.clone_flag() as libc::c_int);
            nix::sched::setns(&fd, flag).map_err(|e| {
                Report::new(Step::Join, e as i32)
                    .path(j.path.clone())
                    .detail(format!("join the {} namespace", j.ns.name()))
            })?;
            trace!(tr, "join: {} namespace {}", j.ns.name(), j.path);
        }
        Ok(())
    }
}

/// The raw descriptor of an optional one.
pub fn raw(fd: &Option<OwnedFd>) -> Option<RawFd> {
    fd.as_ref().map(AsRawFd::as_raw_fd)
}
