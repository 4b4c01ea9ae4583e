//! tsbox-init: the single-threaded helper the addon spawns for each container.
//!
//! It reads the sandbox plan from the SOCK_SEQPACKET socket on fd 3, clones
//! the container into its namespaces, and stays as its monitor until the
//! container ends. The process tree, and where each part lives:
//!
//! - [`helper`]: this process, the helper that becomes the monitor: the
//!   phases on its side, the control socket, exec;
//! - [`child`]: the container's first process from clone to execve (the
//!   sandbox, then the process), tsbox's init as PID 1 ([`child::pid1`]),
//!   and what a process exec'd into the container does.
//!
//! The phases are tsbox_core::Phase; Node's side of them is
//! ts/runtime/launch.ts.

mod channel;
mod child;
mod fail;
mod helper;
mod sys;
mod trace;

use tsbox_core::PLAN_VERSION;

use channel::Channel;

/// The descriptor the addon hands us the channel on.
const CHANNEL_FD: i32 = 3;

fn main() {
    // A panic must never unwind into half-built container state; in a cloned
    // child abort() would signal the wrong thread, so exit directly.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("tsbox-init: internal error: {info}");
        // SAFETY: ends the process without running anything else.
        unsafe { libc::_exit(125) }
    }));
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("tsbox-init {} (plan version {PLAN_VERSION})", env!("CARGO_PKG_VERSION"));
        return;
    }
    // SAFETY: fd 3 is ours by the spawn contract; nothing else in this process uses it.
    let node = match unsafe { Channel::from_raw_fd(CHANNEL_FD) } {
        Ok(c) => c,
        Err(_) => {
            eprintln!("tsbox-init: this program is started by tsbox, with its channel on fd 3; run `tsbox run` instead");
            std::process::exit(125);
        }
    };
    // `--exec`: one process into a running container, for `tsbox exec --detach`.
    if std::env::args().nth(1).as_deref() == Some("--exec") {
        std::process::exit(helper::exec::for_node(node));
    }
    // `--preserve-fds N`: descriptors 4 to 4+N-1 go to the container's first process (as 3 and up).
    let preserved = match (
        std::env::args().nth(1).as_deref(),
        std::env::args().nth(2).and_then(|n| n.parse::<u32>().ok()),
    ) {
        (Some("--preserve-fds"), Some(n)) => n,
        _ => 0,
    };
    std::process::exit(helper::run(node, preserved));
}
