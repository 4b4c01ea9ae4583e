//! `tty`: a pseudo-terminal from the container's own devpts instance (so the
//! command sees /dev/pts/0 and ttyname works), made the command's stdin,
//! stdout and stderr. The master goes to the helper and on to Node.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use tsbox_core::{ChildMsg, Report, Step, TtySize};

use crate::channel::Channel;

fn err(e: Errno, what: &str) -> Report {
    Report::new(Step::Tty, e as i32).path("/dev/ptmx").detail(what.to_string())
}

fn check(r: libc::c_int, what: &str) -> Result<libc::c_int, Report> {
    if r < 0 {
        Err(err(Errno::last(), what))
    } else {
        Ok(r)
    }
}

fn set_size(master: i32, size: TtySize) -> Result<(), Report> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    check(unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) }, "set the terminal size").map(|_| ())
}

/// A pty of the container's devpts: master and slave.
fn open_pty(size: TtySize) -> Result<(OwnedFd, OwnedFd), Report> {
    let master = open("/dev/ptmx", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| err(e, "open the container's /dev/ptmx"))?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    check(unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) }, "unlock the pty")?;
    // TIOCGPTPEER opens the slave without a path lookup (5.4+); else by name.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let peer = unsafe { libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY) };
    let slave = if peer >= 0 {
        // SAFETY: a new descriptor from the kernel.
        unsafe { OwnedFd::from_raw_fd(peer) }
    } else {
        let mut n: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes an unsigned int.
        check(unsafe { libc::ioctl(m, libc::TIOCGPTN, &mut n) }, "find the pty's number")?;
        let path = format!("/dev/pts/{n}");
        open(path.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, Mode::empty()).map_err(|e| err(e, "open the pty's slave"))?
    };
    set_size(m, size)?;
    Ok((master, slave))
}

/// The console a sandbox gets before its process (SandboxPlan.console): a
/// pty whose slave is bound on /dev/console and kept for the process, and
/// whose master goes to the helper and on to Node now.
pub fn console(size: TtySize, chan: &Channel) -> Result<OwnedFd, Report> {
    let (master, slave) = open_pty(size)?;
    let console = "/dev/console";
    match open(
        console,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(_) => {}
        Err(e) => {
            return Err(Report::new(Step::Tty, e as i32)
                .path(console)
                .detail("create the mount point of /dev/console"))
        }
    }
    nix::mount::mount(
        Some(format!("/proc/self/fd/{}", slave.as_raw_fd()).as_str()),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Report::new(Step::Tty, e as i32)
            .path(console)
            .detail("bind the console's pty on /dev/console")
    })?;
    chan.send_fds(&ChildMsg::Pty, &[master.as_raw_fd()]).map_err(|e| {
        Report::new(Step::Tty, e.errno())
            .path("/dev/ptmx")
            .detail(format!("send the console to the helper: {e}"))
    })?;
    Ok(slave)
}

/// Opens the pty (or takes the sandbox's console), puts the slave on 0, 1
/// and 2 (owned by the container user), makes it this process's controlling
/// terminal when `ctty`, and sends a new master to the helper.
pub fn setup(size: TtySize, uid: u32, gid: u32, ctty: bool, chan: &Channel, console: Option<OwnedFd>) -> Result<(), Report> {
    let (master, slave) = match console {
        Some(slave) => (None, slave),
        None => {
            let (m, s) = open_pty(size)?;
            (Some(m), s)
        }
    };
    let s = slave.as_raw_fd();
    // SAFETY: plain descriptor calls on descriptors we own.
    unsafe {
        check(libc::fchown(s, uid, gid), "give the terminal to the container user")?;
        if ctty {
            check(libc::ioctl(s, libc::TIOCSCTTY, 0), "make the pty the controlling terminal")?;
        }
        for fd in 0..3 {
            check(libc::dup2(s, fd), "put the pty on stdin, stdout and stderr")?;
        }
    }
    drop(slave);
    if let Some(master) = master {
        chan.send_fds(&ChildMsg::Pty, &[master.as_raw_fd()]).map_err(|e| {
            Report::new(Step::Tty, e.errno())
                .path("/dev/ptmx")
                .detail(format!("send the pty to the helper: {e}"))
        })?;
    }
    Ok(())
}

/// In the command forked by init: its own session with the pty (on fd 0) as
/// controlling terminal, so that ^C and job control reach it.
pub fn take_ctty() {
    // SAFETY: setsid and TIOCSCTTY on our own stdin.
    unsafe {
        libc::setsid();
        libc::ioctl(0, libc::TIOCSCTTY, 0);
    }
}
