//! The container's first process, from clone to execve. It runs on a copy of
//! the single-threaded helper, so ordinary Rust is fine here. Read top to
//! bottom, it is the launch as the child sees it:
//!
//! - `go` (phase 6): wait until the helper has written the id maps;
//! - the sandbox ([`sandbox::build`]): mounts and pivot_root, the cgroup
//!   namespace once the helper has placed it (phase 4), hostname, loopback;
//! - `ready` (phase 7): tell the helper, with a descriptor of each namespace;
//! - `process` (phase 8): wait for the process to become, and prepare it
//!   ([`process::prepare`]): rlimits, session, ids, terminal, capabilities,
//!   no_new_privs, seccomp last;
//! - `started` (phase 9): exec (or become tsbox's init, [`pid1`], which execs
//!   the command in a child of its own).
//!
//! A process exec'd into a running container ([`join`]) skips the sandbox
//! and joins it instead; the process phase is the same code.

pub mod ahead;
pub mod caps;
pub mod command;
pub mod hooks;
pub mod join;
pub mod mounts;
pub mod pid1;
pub mod process;
pub mod pty;
pub mod sandbox;
pub mod seccomp;
pub mod users;

use nix::sys::prctl;
use nix::sys::signal::Signal;
use tsbox_core::{ChildMsg, ProcessPlan, Report, SandboxPlan, Step, ToChild};

use crate::channel::Channel;
use crate::trace::{trace, Trace};
use command::exit_code_for;

/// Never returns: the process becomes the command, or the init, or exits after
/// reporting why it could not.
pub fn run(plan: &SandboxPlan, chan: Channel, tr: Trace) -> ! {
    // Die with the helper. Credential changes clear this, so it is set again
    // just before exec.
    // Not a reparented one: its parent is the caller's subreaper (conmon,
    // a shim's thread), whose end must not be the container's; the helper's
    // channel still tells it when the helper is gone.
    if !plan.reparent {
        let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    }
    // The OCI hooks' and seccomp agent's state has the container's pid as
    // the host sees it (OCI containers are detached; an attached run has neither).
    if plan.detach {
        hooks::remember_host_pid();
    }
    let report = match start(plan, &chan, tr) {
        Ok(Start::Forked(ahead, process)) => pid1::run_ahead(ahead, &process, &chan, tr),
        Ok(Start::Command(cmd, process)) if plan.init => pid1::run(cmd, &chan, process.tty.is_some(), tr),
        Ok(Start::Command(cmd, _)) => {
            trace!(tr, "exec: {} (as PID 1)", cmd.name());
            cmd.exec()
        }
        Err(r) => r,
    };
    fail(&chan, report)
}

/// How the process starts once it is prepared.
enum Start<'a> {
    /// This process execs it, or (as init) forks it first.
    Command(command::Command, ProcessPlan),
    /// The process forked ahead becomes it ([`ahead`]); this one is its init.
    Forked(ahead::Ahead<'a>, ProcessPlan),
}

/// Reports `report` to the helper and exits with its status.
pub fn fail(chan: &Channel, report: Report) -> ! {
    let _ = chan.send(&ChildMsg::Failed(report.clone()));
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to
    // the helper this process was copied from.
    unsafe { libc::_exit(exit_code_for(&report)) }
}

fn start<'a>(plan: &'a SandboxPlan, chan: &Channel, tr: Trace) -> crate::fail::Result<Start<'a>> {
    let sandbox::Built { console, pid_counter } = sandbox::build(plan, chan, tr)?;
    sandbox::ready(plan, chan, tr)?;
    // A pool's sandbox: its likely process, forked and prepared while it waits.
    let (ahead, in_session) = ahead::fork_expected(plan, pid_counter, chan, tr);
    let process = wait_process(chan)?;
    if let Some(a) = ahead {
        if let Some(a) = a.take(plan, &process, chan, tr)? {
            return Ok(Start::Forked(a, process));
        }
    }
    let how = process::Apply {
        in_session,
        ..Default::default()
    };
    let cmd = process::prepare_with(&process, chan, process::Context::sandbox(plan, console), tr, how)?;
    if let Some(h) = &process.start_container_hooks {
        hooks::run("startContainer", h, "created", None, tr)?;
    }
    Ok(Start::Command(cmd, process))
}

/// Phase 8: the process to become (the helper forwards it from Node).
pub fn wait_process(chan: &Channel) -> crate::fail::Result<ProcessPlan> {
    match chan.recv::<ToChild>() {
        Ok(Some(ToChild::Process(p))) => Ok(*p),
        // The helper is gone: nobody to report to.
        // SAFETY: ends this process without running anything else.
        Ok(None) => unsafe { libc::_exit(125) },
        Ok(Some(other)) => Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected the process, got {other:?}"))),
        Err(e) => Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
    }
}
