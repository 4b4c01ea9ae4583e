//! The container process, from clone to execve (DESIGN.md, sync point 4). It runs
//! on a copy of the single-threaded helper, so ordinary Rust is fine here. The
//! order is the seed program's, made visible: wait for the id maps, mounts and
//! pivot_root, hostname, loopback, cgroup namespace, rlimits, session, ids,
//! capabilities, no_new_privs, then exec (or the init, which execs the command).

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{sethostname, setresgid, setresuid, Gid, Uid};
use tsbox_core::{ChildGo, ChildMsg, Namespace, Plan, Report, Step};

use crate::channel::Channel;
use crate::exec::{exit_code_for, Command};
use crate::fail::{Result, StepExt};
use crate::trace::{trace, Trace};
use crate::{caps, init, mounts, pty, users};

/// Never returns: the process becomes the command, or the init, or exits after
/// reporting why it could not.
pub fn run(plan: &Plan, chan: Channel, tr: Trace) -> ! {
    // Die with the helper. Credential changes clear this, so it is set again
    // just before exec.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let report = match setup(plan, &chan, tr) {
        Ok(cmd) if plan.init => init::run(cmd, &chan, plan.tty.is_some(), tr),
        Ok(cmd) => {
            trace!(tr, "exec: {} (as PID 1)", cmd.name());
            cmd.exec()
        }
        Err(r) => r,
    };
    let _ = chan.send(&ChildMsg::Failed(report.clone()));
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to
    // the helper this process was copied from.
    unsafe { libc::_exit(exit_code_for(&report)) }
}

fn setup(plan: &Plan, chan: &Channel, tr: Trace) -> Result<Command> {
    // (3) Wait for the parent to write our id maps.
    let trees = match chan.recv_fds::<ChildGo>() {
        Ok(Some((ChildGo::Go, trees))) => trees,
        Ok(Some((other, _))) => return Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected go, got {other:?}"))),
        // The helper is gone: nobody to report to.
        Ok(None) => unsafe { libc::_exit(125) },
        Err(e) => return Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
    };
    let keep = plan.capabilities.as_deref().map(caps::parse).transpose()?;

    // (4)
    let joining = plan.join.is_some();
    let mut cgroup = CgroupEntry {
        chan,
        tr,
        unshare: plan.has(Namespace::Cgroup) && !joining,
        done: false,
    };
    let sources = if plan.has(Namespace::Mount) && !joining {
        Some(mounts::open_sources(plan, trees, &tr)?)
    } else {
        None
    };
    if joining {
        // Root on the host until the ids change: nothing in the container may
        // read or ptrace this process (CVE-2016-9962's class) before it execs.
        let _ = prctl::set_dumpable(false);
    }
    if plan.has(Namespace::User) {
        // Root of the user namespace, first of all: files we create on the
        // filesystems we mount need an owner that is mapped there, and a
        // process joining a running container must not keep the helper's
        // host ids for a single step more than it needs to.
        set_ids_checked(0, 0, "become root in the user namespace")?;
    }
    if let Some(sources) = sources {
        mounts::build_root(plan, sources, &tr, &mut || cgroup.enter())?;
    }
    cgroup.enter()?;
    if plan.has(Namespace::Uts) && !joining {
        sethostname(&plan.hostname).step_path(Step::Sethostname, &plan.hostname, || "set the container's hostname".into())?;
        trace!(tr, "hostname: {}", plan.hostname);
    }
    if plan.has(Namespace::Net) && !joining {
        loopback_up().step_path(Step::Loopback, "lo", || "bring the loopback interface up".into())?;
        trace!(tr, "network: lo up, no other interface");
    }
    for rl in &plan.rlimits {
        set_rlimit(&rl.name, rl.soft, rl.hard)?;
        trace!(tr, "rlimit: {} soft={} hard={}", rl.name, fmt_limit(rl.soft), fmt_limit(rl.hard));
    }
    nix::unistd::setsid().step(Step::Setsid, || "start a new session (no controlling terminal)".into())?;

    let user = users::resolve_in_container(&plan.user)?;
    let mut env = plan.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cmd = Command::new(&plan.argv, &env)?;
    if let Some(size) = plan.tty {
        // Under init, the command takes the terminal as its own session's.
        pty::setup(size, user.uid, user.gid, !plan.init, chan)?;
        trace!(tr, "tty: {}x{} on stdin, stdout and stderr", size.cols, size.rows);
    }
    let bounding = keep.as_ref().map(caps::drop_bounding).transpose()?;
    // Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter,
    // which is gone once the ids and capabilities change: load it now.
    if let Some(bpf) = plan.seccomp.as_ref().filter(|_| !plan.no_new_privileges) {
        crate::seccomp::load(bpf.as_bytes())?;
        trace!(tr, "seccomp: filter loaded ({} instructions), before the privilege drop", bpf.len());
    }
    set_ids(&user)?;
    rearm_pdeathsig(chan)?;
    trace!(
        tr,
        "ids: uid={} gid={} groups={:?} home={}",
        user.uid,
        user.gid,
        user.groups,
        user.home
    );
    if plan.has(Namespace::Mount) && !joining {
        // As container root, before the switch to the container user (Docker's order).
        mounts::ensure_dir(&plan.cwd);
    }
    nix::unistd::chdir(plan.cwd.as_str()).step_path(Step::Chdir, &plan.cwd, || "enter the working directory".into())?;
    if let (Some(keep), Some(bounding)) = (&keep, &bounding) {
        caps::apply(keep, bounding)?;
        let mut names: Vec<_> = keep.iter().map(|c| c.to_string()).collect();
        names.sort();
        trace!(
            tr,
            "capabilities: kept {}",
            if names.is_empty() { "none".into() } else { names.join(",") }
        );
    }
    if plan.no_new_privileges {
        prctl::set_no_new_privs().step(Step::NoNewPrivs, || "set no_new_privs".into())?;
        trace!(tr, "no_new_privs: on");
    }
    // The credential changes above cleared the parent-death signal.
    prctl::set_pdeathsig(Signal::SIGKILL).step(Step::InitFork, || "set the parent-death signal".into())?;
    if helper_gone(chan) {
        unsafe { libc::_exit(125) }
    }
    // Nothing but the stdio the caller gave us reaches the command.
    close_range_cloexec(3);
    // Last: the init (when there is one) is restricted like the command.
    if let Some(bpf) = plan.seccomp.as_ref().filter(|_| plan.no_new_privileges) {
        crate::seccomp::load(bpf.as_bytes())?;
        trace!(tr, "seccomp: filter loaded ({} instructions)", bpf.len());
    }
    Ok(cmd)
}

fn set_ids(u: &users::Resolved) -> Result<()> {
    // A single-id map (an unprivileged caller) comes with setgroups "deny": the
    // kernel then refuses setgroups even for an empty list.
    let groups_allowed = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    if groups_allowed {
        let gids: Vec<Gid> = u.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&gids).step(Step::Setgroups, || format!("set the supplementary groups {:?}", u.groups))?;
    } else if !u.groups.is_empty() {
        return Err(Report::new(Step::Setgroups, libc::EPERM)
            .detail(format!("set the supplementary groups {:?}", u.groups))
            .hint("setgroups is denied in this user namespace (a single-id map); supplementary groups need /etc/subgid and newgidmap"));
    }
    // Keep the permitted set across a change to a non-root uid; caps::apply then
    // sets exactly what is kept.
    prctl::set_keepcaps(true).step(Step::Setuid, || "keep capabilities across the uid change".into())?;
    set_ids_checked(u.uid, u.gid, "switch to the container user")?;
    prctl::set_keepcaps(false).step(Step::Setuid, || "reset keepcaps".into())?;
    Ok(())
}

/// setresgid then setresuid to `uid`/`gid` in all three slots, and a check
/// with getresgid/getresuid that the kernel did just that: an id the call
/// reads as "unchanged" ((uid_t)-1) must never leave a process with the ids
/// it had, which on the exec path are the helper's.
fn set_ids_checked(uid: u32, gid: u32, what: &str) -> Result<()> {
    if uid == users::UNCHANGED || gid == users::UNCHANGED {
        return Err(Report::new(Step::User, libc::EINVAL).path(format!("{uid}:{gid}")).detail(format!(
            "{what}: {} means \"leave unchanged\" to setresuid/setresgid",
            users::UNCHANGED
        )));
    }
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid)).step_path(Step::Setgid, &gid.to_string(), || what.into())?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid)).step_path(Step::Setuid, &uid.to_string(), || what.into())?;
    let g = nix::unistd::getresgid().step(Step::Setgid, || "read the group ids back".into())?;
    let u = nix::unistd::getresuid().step(Step::Setuid, || "read the user ids back".into())?;
    let gids = [g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw()];
    let uids = [u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()];
    if gids != [gid; 3] || uids != [uid; 3] {
        return Err(Report::new(Step::Setuid, libc::EPERM)
            .path(format!("{uid}:{gid}"))
            .detail(format!(
                "{what}: asked for uid {uid} gid {gid}, the kernel left uids {uids:?} gids {gids:?}"
            ))
            .hint("this is a bug in tsbox or the kernel; the process was stopped before it could run anything"));
    }
    Ok(())
}

fn fmt_limit(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "unlimited".into())
}

pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

fn set_rlimit(name: &str, soft: Option<u64>, hard: Option<u64>) -> Result<()> {
    let res = rlimit_resource(name).ok_or_else(|| Report::new(Step::Rlimit, libc::EINVAL).path(name).detail("unknown rlimit name"))?;
    let lim = libc::rlimit {
        rlim_cur: soft.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: hard.unwrap_or(libc::RLIM_INFINITY),
    };
    // SAFETY: a plain struct passed by pointer.
    if unsafe { libc::setrlimit(res, &lim) } != 0 {
        return Err(Report::new(Step::Rlimit, Errno::last() as i32)
            .path(name)
            .detail(format!(
                "set RLIMIT_{} to soft={} hard={}",
                name.to_uppercase(),
                fmt_limit(soft),
                fmt_limit(hard)
            ))
            .hint("a hard limit can only be raised with CAP_SYS_RESOURCE in the host's user namespace; keep it at or below the caller's"));
    }
    Ok(())
}

fn loopback_up() -> std::result::Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of req.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Errno::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Sets the parent-death signal again (credential changes clear it) and exits
/// if the helper died before it was armed.
fn rearm_pdeathsig(chan: &Channel) -> Result<()> {
    prctl::set_pdeathsig(Signal::SIGKILL).step(Step::InitFork, || "set the parent-death signal".into())?;
    if helper_gone(chan) {
        // SAFETY: ends this process without running anything else.
        unsafe { libc::_exit(125) }
    }
    Ok(())
}

/// Closes every descriptor from `first` up (the helper's start-up).
pub fn close_from(first: u32) {
    // SAFETY: closes descriptors this process does not use.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if r < 0 {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// True when the helper has exited (its end of the channel is closed).
fn helper_gone(chan: &Channel) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(chan.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1) if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)))
}

/// Marks every descriptor from `first` up close-on-exec.
pub fn close_range_cloexec(first: u32) {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        // Kernels before 5.11: walk /proc/self/fd.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// Entering the cgroup: the helper places the child while it builds its
/// mounts and says so with `Placed`; the child then unshares its cgroup
/// namespace, whose root is that cgroup, also for the cgroupfs it mounts
/// next. Once, at the first cgroupfs mount or after the mounts.
struct CgroupEntry<'a> {
    chan: &'a Channel,
    tr: Trace,
    unshare: bool,
    done: bool,
}

impl CgroupEntry<'_> {
    fn enter(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        match self.chan.recv::<ChildGo>() {
            Ok(Some(ChildGo::Placed)) => {}
            // The helper is gone (it could not place us): nobody to report to.
            Ok(None) => unsafe { libc::_exit(125) },
            Ok(Some(other)) => return Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected placed, got {other:?}"))),
            Err(e) => return Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
        }
        self.done = true;
        if self.unshare {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .step(Step::UnshareCgroup, || "enter a new cgroup namespace".into())?;
            let tr = self.tr;
            trace!(tr, "cgroup namespace: entered");
        }
        Ok(())
    }
}
