//! The process phase (8): what makes a process in the sandbox the one the
//! [`ProcessPlan`] asks for, the same for the container's first process and
//! for one exec'd into it. The order is the seed program's, made visible:
//! rlimits, session, the user, the terminal, the bounding set, ids,
//! capabilities, no_new_privs, then seccomp, last before exec.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use tsbox_core::{IoPriority, MemoryPolicy, Namespace, ProcessPlan, Report, SandboxPlan, Scheduler, Step};

use super::command::Command;
use super::{caps, mounts, pty, users};
use crate::channel::Channel;
use crate::fail::{Result, StepExt};
use crate::trace::{trace, Trace};

/// Where the process is being prepared.
pub struct Context {
    /// The container has its own mount namespace with a writable root: a
    /// missing working directory is created (in the writable layer).
    pub create_cwd: bool,
    /// Under tsbox's init, the command takes the terminal as its own
    /// session's; as PID 1 (or exec'd) the process does.
    pub ctty: bool,
    /// The slave of the console the sandbox made (SandboxPlan.console),
    /// which a `tty` takes instead of a new pty.
    pub console: Option<OwnedFd>,
    /// Descriptors 4 to 4+N-1, which the process gets as 3 to 3+N-1 (the
    /// container's first process only: --preserve-fds).
    pub preserved: u32,
    /// Dies with its parent (SIGKILL); not a reparented PID 1 (SandboxPlan.reparent).
    pub pdeathsig: bool,
}

impl Context {
    pub fn sandbox(plan: &SandboxPlan, console: Option<OwnedFd>) -> Context {
        Context {
            create_cwd: plan.has(Namespace::Mount),
            ctty: !plan.init,
            console,
            preserved: crate::helper::PRESERVED_FDS.load(std::sync::atomic::Ordering::Relaxed),
            pdeathsig: !plan.reparent,
        }
    }

    pub fn exec() -> Context {
        Context {
            create_cwd: false,
            ctty: true,
            console: None,
            preserved: 0,
            pdeathsig: true,
        }
    }
}

/// Applies `process` to this process, as far as it goes before execve; the
/// command to exec is returned. Runs as root of the container's user
/// namespace (or the host's, without one).
pub fn prepare(process: &ProcessPlan, chan: &Channel, ctx: Context, parent_tr: Trace) -> Result<Command> {
    prepare_with(process, chan, ctx, parent_tr, Apply::default())
}

/// [`prepare`] with what `how` gives (a session made already).
pub fn prepare_with(process: &ProcessPlan, chan: &Channel, ctx: Context, parent_tr: Trace, how: Apply<'_>) -> Result<Command> {
    let user = apply(process, chan, ctx, parent_tr, how)?;
    Command::new(&process.argv, &with_home(&process.env, &user))
}

/// What [`apply`] is given besides the plan.
#[derive(Default)]
pub struct Apply<'a> {
    /// The user, resolved already from the container's files.
    pub user: Option<users::Resolved>,
    /// Descriptors of this process's own that stay open.
    pub keep: &'a [RawFd],
    /// The session is made: the init's, which it made before it forked
    /// the process ahead (the command runs in the init's session, as when
    /// init forks it after).
    pub in_session: bool,
}

/// `env` with HOME from the user's entry when it has none (Docker's rule).
pub fn with_home(env: &[String], user: &users::Resolved) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// Everything of [`prepare`] but the command (which a process forked ahead
/// gets later, and an init that restricts itself never): returns the user
/// the process became.
pub fn apply(process: &ProcessPlan, chan: &Channel, ctx: Context, parent_tr: Trace, how: Apply<'_>) -> Result<users::Resolved> {
    let tr = if process.trace { parent_tr.on() } else { parent_tr };
    refuse_proc_cwd(&process.cwd)?;
    // CVE-2024-21626: a working directory of /proc/self/fd/N (or a symlink
    // to it, which the container may put there) enters whatever N is. Every
    // descriptor this process has of the host's goes now, before anything
    // of the container's is read or entered, not only at exec: the helper's
    // or the monitor's (the v2 cgroup directory, the id range's lock, the
    // namespaces, the control connections). Kept: its channel (a socket: a
    // failure is still reported on it), the console, the seccomp agent's
    // socket, and the descriptors the caller preserved (moved to 3 and up
    // below).
    let mut keep = vec![chan.as_raw_fd()];
    keep.extend_from_slice(how.keep);
    keep.extend(ctx.console.as_ref().map(AsRawFd::as_raw_fd));
    keep.extend(super::seccomp::agent_fd());
    keep.extend((0..ctx.preserved as RawFd).map(|i| 4 + i));
    close_all_but(&keep);
    let sets = process.capabilities.as_ref().map(caps::Sets::parse).transpose()?;
    for rl in &process.rlimits {
        set_rlimit(&rl.name, rl.soft, rl.hard)?;
        trace!(tr, "rlimit: {} soft={} hard={}", rl.name, fmt_limit(rl.soft), fmt_limit(rl.hard));
    }
    if !how.in_session {
        nix::unistd::setsid().step(Step::Setsid, || "start a new session (no controlling terminal)".into())?;
    }
    // While the process is still root with its capabilities: a realtime
    // class or policy needs CAP_SYS_NICE (or CAP_SYS_ADMIN for I/O).
    if let Some(p) = process.personality {
        // SAFETY: personality(2) with a value; it changes this process only.
        if unsafe { libc::personality(p as libc::c_ulong) } < 0 {
            return Err(Report::new(Step::Exec, Errno::last() as i32).detail(format!("set the personality {p:#x}")));
        }
        trace!(tr, "personality: {p:#x}");
    }
    if let Some(io) = process.io_priority {
        set_io_priority(io)?;
        trace!(tr, "io priority: class {} priority {}", io.class, io.priority);
    }
    if let Some(policy) = &process.memory_policy {
        set_memory_policy(policy)?;
        trace!(
            tr,
            "memory policy: mode {} flags {:#x} nodes {:?}",
            policy.mode,
            policy.flags,
            policy.nodes
        );
    }
    if let Some(sched) = process.scheduler {
        set_scheduler(&sched)?;
        trace!(
            tr,
            "scheduler: policy {} priority {} nice {}",
            sched.policy,
            sched.priority,
            sched.nice
        );
    }

    let user = match how.user {
        Some(u) => u,
        None => users::resolve_in_container(&process.user)?,
    };
    if let Some(size) = process.tty {
        pty::setup(size, user.uid, user.gid, ctx.ctty, chan, ctx.console)?;
        trace!(tr, "tty: {}x{} on stdin, stdout and stderr", size.cols, size.rows);
    }
    let known = sets.as_ref().map(|s| caps::drop_bounding(&s.bounding)).transpose()?;
    // Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter,
    // which is gone once the ids and capabilities change: load it now.
    if let Some(bpf) = process.seccomp.as_ref().filter(|_| !process.no_new_privileges) {
        super::seccomp::load(bpf.as_bytes(), process.seccomp_agent.as_ref())?;
        trace!(tr, "seccomp: filter loaded ({} instructions), before the privilege drop", bpf.len());
    }
    set_ids(&user)?;
    rearm_pdeathsig(chan, ctx.pdeathsig)?;
    trace!(
        tr,
        "ids: uid={} gid={} groups={:?} home={}",
        user.uid,
        user.gid,
        user.groups,
        user.home
    );
    if ctx.create_cwd {
        // As container root, before the switch to the container user (Docker's order).
        mounts::ensure_dir(&process.cwd);
    }
    nix::unistd::chdir(process.cwd.as_str()).step_path(Step::Chdir, &process.cwd, || "enter the working directory".into())?;
    // Whatever the path went through, the directory entered must be
    // inside the container's root.
    cwd_within_root().map_err(|e| {
        Report::new(Step::Chdir, e as i32)
            .path(process.cwd.clone())
            .detail("enter the working directory: it is not inside the container's root")
            .hint("the working directory resolved to a directory outside the container (a symlink to /proc/self/fd/N, or a descriptor from outside); give a directory of the container")
    })?;
    if let (Some(sets), Some(known)) = (&sets, &known) {
        caps::apply(sets, known)?;
        let mut names: Vec<_> = sets.effective.iter().map(|c| c.to_string()).collect();
        names.sort();
        trace!(
            tr,
            "capabilities: kept {}",
            if names.is_empty() { "none".into() } else { names.join(",") }
        );
    }
    if let Some(mask) = process.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if process.no_new_privileges {
        prctl::set_no_new_privs().step(Step::NoNewPrivs, || "set no_new_privs".into())?;
        trace!(tr, "no_new_privs: on");
    }
    // The credential changes above cleared the parent-death signal.
    rearm_pdeathsig(chan, ctx.pdeathsig)?;
    // Nothing but the stdio the caller gave us (and the descriptors it
    // preserved, moved down to 3 and up) reaches the command.
    close_range_cloexec(3);
    for i in 0..ctx.preserved as i32 {
        // Upwards: each target is a source already taken (4+i-1), never one still to come.
        // SAFETY: dup2 between descriptors of this process; the new one is not close-on-exec.
        if unsafe { libc::dup2(4 + i, 3 + i) } < 0 {
            return Err(Report::new(Step::Exec, Errno::last() as i32).detail(format!(
                "pass the preserved descriptor {} on as {}",
                4 + i,
                3 + i
            )));
        }
    }
    // Last: the init (when there is one) is restricted like the command.
    if let Some(bpf) = process.seccomp.as_ref().filter(|_| process.no_new_privileges) {
        super::seccomp::load(bpf.as_bytes(), process.seccomp_agent.as_ref())?;
        trace!(tr, "seccomp: filter loaded ({} instructions)", bpf.len());
    }
    Ok(user)
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
pub fn set_ids_checked(uid: u32, gid: u32, what: &str) -> Result<()> {
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

/// Sets the parent-death signal again (credential changes clear it) and exits
/// if the helper died before it was armed.
fn rearm_pdeathsig(chan: &Channel, pdeathsig: bool) -> Result<()> {
    if pdeathsig {
        prctl::set_pdeathsig(Signal::SIGKILL).step(Step::InitFork, || "set the parent-death signal".into())?;
    }
    if helper_gone(chan) {
        // SAFETY: ends this process without running anything else.
        unsafe { libc::_exit(125) }
    }
    Ok(())
}

/// Closes every descriptor from `first` up (the helper's start-up).
pub fn close_from(first: u32) {
    close_fds(first, u32::MAX);
}

/// Closes every descriptor from 3 up but those in `keep`. Nothing that
/// owns one of the others may drop it afterwards (a process that never
/// returns to its callers' frames, as the child and the exec'd process).
pub fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter(|fd| **fd >= 3).map(|fd| *fd as u32).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3;
    for k in keep {
        if k > first {
            close_fds(first, k - 1);
        }
        first = k + 1;
    }
    close_fds(first, u32::MAX);
}

/// close_range(first, last); before Linux 5.9, each one /proc/self/fd lists.
fn close_fds(first: u32, last: u32) {
    close_range(first, last, 0, |fd| {
        // SAFETY: closes descriptors this process does not use.
        unsafe { libc::close(fd) };
    });
}

/// A working directory under /proc (after `.` and `..` are taken as
/// written): /proc/self/fd/N, /proc/PID/cwd and /proc/PID/root name other
/// processes' directories and descriptors, never one of the container's
/// own to work in.
fn refuse_proc_cwd(cwd: &str) -> Result<()> {
    if !under_proc(cwd) {
        return Ok(());
    }
    Err(Report::new(Step::Chdir, libc::EINVAL)
        .path(cwd)
        .detail("a working directory under /proc/ is refused: it names a process's descriptor or directory, which may be the host's")
        .hint("give a directory of the container's filesystem as the working directory (--workdir, cwd, the image's WorkingDir)"))
}

/// Whether `path`, normalised lexically, is below /proc.
fn under_proc(path: &str) -> bool {
    mounts::normalize(path).starts_with("/proc/")
}

/// Whether the working directory is inside this process's root: getcwd(2)
/// names one outside it "(unreachable)/..." (glibc's getcwd then says
/// ENOENT; so does this), and fails for one that was removed.
pub fn cwd_within_root() -> std::result::Result<(), Errno> {
    let mut buf = [0u8; 4096];
    // SAFETY: the kernel writes at most buf.len() bytes.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    if buf[0] != b'/' {
        return Err(Errno::ENOENT);
    }
    Ok(())
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
    close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC, |fd| {
        // SAFETY: only changes descriptor flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    });
}

/// close_range(2) with `flags` over `first..=last`; on kernels without it
/// (before 5.9, or 5.11 for CLOSE_RANGE_CLOEXEC), `each` on every
/// descriptor /proc/self/fd lists in that range.
fn close_range(first: u32, last: u32, flags: u32, each: impl Fn(RawFd)) {
    // SAFETY: closes, or changes the flags of, descriptors this process does not use.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if r < 0 {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<u32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
            for fd in fds.into_iter().filter(|fd| (first..=last).contains(fd)) {
                each(fd as RawFd);
            }
        }
    }
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | priority).
fn set_io_priority(io: IoPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let value = (libc::c_long::from(io.class) << 13) | libc::c_long::from(io.priority);
    // SAFETY: a plain system call with integer arguments.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, value) } < 0 {
        return Err(Report::new(Step::Exec, Errno::last() as i32)
            .detail(format!("set the I/O priority (class {}, priority {})", io.class, io.priority)));
    }
    Ok(())
}

/// set_mempolicy(2): the mode with its flags, and the nodes as a bitmask.
fn set_memory_policy(p: &MemoryPolicy) -> Result<()> {
    const BITS: usize = u64::BITS as usize;
    let highest = p.nodes.iter().copied().max().map_or(0, |n| n as usize + 1);
    let mut mask = vec![0u64; highest.div_ceil(BITS).max(1)];
    for n in &p.nodes {
        mask[*n as usize / BITS] |= 1 << (*n as usize % BITS);
    }
    // maxnode counts one more than the bits the kernel reads (as numactl passes it).
    let maxnode = if p.nodes.is_empty() {
        0
    } else {
        (mask.len() * BITS + 1) as libc::c_ulong
    };
    let ptr = if p.nodes.is_empty() { std::ptr::null() } else { mask.as_ptr() };
    // SAFETY: the mask holds maxnode - 1 bits, and lives through the call.
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, (p.mode | p.flags) as libc::c_int, ptr, maxnode) } < 0 {
        return Err(Report::new(Step::Exec, Errno::last() as i32)
            .detail(format!(
                "set the memory policy (mode {}, flags {:#x}, nodes {:?})",
                p.mode, p.flags, p.nodes
            ))
            .hint("the nodes must exist and be allowed (see /sys/devices/system/node and the cpuset's mems)"));
    }
    Ok(())
}

/// sched_setattr(2) on this process.
fn set_scheduler(s: &Scheduler) -> Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: s.policy,
        flags: s.flags,
        nice: s.nice,
        priority: s.priority,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
    };
    // SAFETY: sched_setattr reads `size` bytes of a struct we own.
    if unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            &attr as *const SchedAttr,
            0 as libc::c_long,
        )
    } < 0
    {
        return Err(Report::new(Step::Exec, Errno::last() as i32)
            .detail(format!(
                "set the scheduling policy {} (priority {}, nice {})",
                s.policy, s.priority, s.nice
            ))
            .hint("a realtime policy needs CAP_SYS_NICE (and room in the cgroup's rt budget)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};

    use nix::errno::Errno;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    use super::{close_all_but, cwd_within_root, refuse_proc_cwd, under_proc};

    /// Runs `f` in a forked child and returns its exit status: what it does
    /// to its descriptors and working directory stays in the child.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f` and ends with _exit, never returning
        // into the test harness.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
                // SAFETY: ends the child without running the harness's exit.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => code,
                other => panic!("the child ended as {other:?}"),
            },
        }
    }

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }

    #[test]
    fn close_all_but_closes_every_descriptor_from_3_up_except_those_kept() {
        let fds: Vec<OwnedFd> = (0..6).map(|_| std::fs::File::open("/dev/null").unwrap().into()).collect();
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        // Two kept side by side, one alone, given out of order and twice.
        let keep = [raw[4], raw[1], raw[2], raw[4]];
        let open = in_child(|| {
            close_all_but(&keep);
            let mut open = 0;
            for (i, fd) in raw.iter().enumerate() {
                if is_open(*fd) {
                    open |= 1 << i;
                }
            }
            // Anything else from 3 up (the harness's own descriptors included).
            if (3..4096).any(|fd| !raw.contains(&fd) && is_open(fd)) {
                open |= 1 << 6;
            }
            // Stdio is not touched.
            if (0..3).all(is_open) {
                open |= 1 << 7;
            }
            open
        });
        assert_eq!(open, 0b1001_0110, "bits: the six descriptors, any other, stdio");
    }

    #[test]
    fn a_working_directory_under_proc_is_refused_however_it_is_spelled() {
        for cwd in [
            "/proc/self/fd/7",
            "/proc/1/cwd",
            "/proc/self/root/etc",
            "//proc//self/fd/3",
            "/./proc/./1/root",
            "/tmp/../proc/self/fd/9",
            "/../proc/self/cwd",
        ] {
            assert!(under_proc(cwd), "{cwd}");
            let r = refuse_proc_cwd(cwd).expect_err(cwd);
            assert_eq!(
                (r.step, r.errno, r.path.as_deref()),
                (tsbox_core::Step::Chdir, libc::EINVAL, Some(cwd))
            );
            assert!(r.detail.contains("under /proc/"), "{}", r.detail);
        }
        for cwd in [
            "/",
            "/proc",
            "/proc/",
            "/srv/proc/self/fd/3",
            "/procfs/x",
            "/proc/../srv",
            "/home/app",
        ] {
            assert!(!under_proc(cwd), "{cwd}");
            assert!(refuse_proc_cwd(cwd).is_ok(), "{cwd}");
        }
    }

    #[test]
    fn a_working_directory_outside_the_root_or_removed_is_told_apart_from_one_inside() {
        let base = std::env::temp_dir().join(format!("tsbox-cwd-test-{}", std::process::id()));
        let (inside, outside) = (base.join("root/home"), base.join("elsewhere"));
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let code = |r: Result<(), Errno>| match r {
            Ok(()) => 0,
            Err(Errno::ENOENT) => 1,
            Err(_) => 2,
        };
        assert_eq!(in_child(|| code(cwd_within_root())), 0, "this test's own working directory");
        let removed = base.join("removed");
        let gone = in_child(|| {
            std::fs::create_dir(&removed).unwrap();
            std::env::set_current_dir(&removed).unwrap();
            std::fs::remove_dir(&removed).unwrap();
            code(cwd_within_root())
        });
        assert_eq!(gone, 1, "a removed working directory");
        // A root that does not hold the working directory: as a container
        // process whose cwd was reached through a descriptor from outside.
        let chrooted = |cwd: &std::path::Path| {
            in_child(|| {
                // Root of a user namespace of its own, when not root (CAP_SYS_CHROOT there).
                if !nix::unistd::geteuid().is_root() {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).expect("a user namespace for chroot");
                }
                std::env::set_current_dir(cwd).unwrap();
                nix::unistd::chroot(&base.join("root")).expect("chroot");
                code(cwd_within_root())
            })
        };
        assert_eq!(chrooted(&outside), 1, "a working directory outside the root");
        assert_eq!(chrooted(&inside), 0, "a working directory inside the root");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
