//! The tsbox addon. Deliberately thin: it owns the Node end of the launch channel
//! (a SOCK_SEQPACKET socket, which Node's own APIs cannot read) and nothing that
//! forks. The helper is started with posix_spawn (spawn.rs), the other end on
//! its fd 3; the vfork-style child only dup2s and execs, so no Rust runs between
//! clone and exec in this multithreaded process (DESIGN.md, Processes).

pub mod cgroup;
pub mod devices;
pub mod flatten;
pub mod lock;
pub mod nflog;
pub mod spawn;
pub mod unpack;
// Public so its #[napi] functions count as used in test builds too.
pub mod seccomp;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use tokio::io::unix::AsyncFd;

fn io_err(what: &str, e: Errno) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("{what}: {} ({})", e.desc(), tsbox_core::errno_name(e as i32)),
    )
}

/// The Node end of a launch channel. Messages are JSON strings, one per packet.
#[napi]
pub struct Channel {
    fd: Mutex<Option<Arc<AsyncFd<OwnedFd>>>>,
    /// The helper's end until it has been handed over (close-on-exec, blocking).
    child: Mutex<Option<OwnedFd>>,
    /// Descriptors received and not yet taken.
    received: Received,
    /// Wakes a pending `recv` with a "cancelled" error (`cancelRecv`).
    cancel: Arc<tokio::sync::Notify>,
    /// `cancelRecv` calls so far: a `recv` made before the latest one is
    /// cancelled even if its future had not run yet when it came.
    cancels: Arc<std::sync::atomic::AtomicU64>,
}

type Received = Arc<Mutex<std::collections::VecDeque<OwnedFd>>>;

#[napi]
impl Channel {
    /// Creates the socketpair: this object keeps the non-blocking parent end;
    /// `childFd` is to be passed to tsbox-init as its fd 3 and then released
    /// with `closeChild`.
    #[napi(constructor)]
    pub fn new() -> Result<Channel> {
        let (parent, child) = socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| io_err("socketpair", e))?;
        nix::fcntl::fcntl(&parent, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(|e| io_err("fcntl O_NONBLOCK", e))?;
        // SAFETY: `parent` is a socket we own; it stays open as long as the AsyncFd.
        let async_fd = within_runtime_if_available(|| unsafe { AsyncFd::register(parent) })
            .map_err(|e| Error::from_reason(format!("register the channel with the event loop: {e}")))?;
        Ok(Channel {
            fd: Mutex::new(Some(Arc::new(async_fd))),
            child: Mutex::new(Some(child)),
            received: Default::default(),
            cancel: Default::default(),
            cancels: Default::default(),
        })
    }

    /// A channel connected to the control socket at `path` (a running
    /// container's monitor).
    #[napi(factory)]
    pub fn connect(path: String) -> Result<Channel> {
        use nix::sys::socket::{connect, socket};
        let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).map_err(|e| io_err("socket", e))?;
        loop {
            match tsbox_core::wire::with_unix_addr(&path, |addr| connect(fd.as_raw_fd(), addr)) {
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::new(
                        Status::GenericFailure,
                        format!("connect to {path}: {} ({})", e.desc(), tsbox_core::errno_name(e as i32)),
                    ))
                }
                Ok(()) => break,
            }
        }
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).map_err(|e| io_err("fcntl O_NONBLOCK", e))?;
        // SAFETY: `fd` is a socket we own; it stays open as long as the AsyncFd.
        let async_fd = within_runtime_if_available(|| unsafe { AsyncFd::register(fd) })
            .map_err(|e| Error::from_reason(format!("register the channel with the event loop: {e}")))?;
        Ok(Channel {
            fd: Mutex::new(Some(Arc::new(async_fd))),
            child: Mutex::new(None),
            received: Default::default(),
            cancel: Default::default(),
            cancels: Default::default(),
        })
    }

    /// The descriptor for the helper's fd 3, or -1 once released.
    #[napi(getter)]
    pub fn child_fd(&self) -> i32 {
        self.child.lock().unwrap().as_ref().map(|fd| fd.as_raw_fd()).unwrap_or(-1)
    }

    /// Closes this process's copy of the helper's end (after spawning it, or
    /// when the spawn failed).
    #[napi]
    pub fn close_child(&self) {
        self.child.lock().unwrap().take();
    }

    fn get(&self) -> Result<Arc<AsyncFd<OwnedFd>>> {
        self.fd
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| Error::new(Status::GenericFailure, "the channel is closed"))
    }

    /// Sends one message (framed by tsbox_core::wire, as the helper reads it).
    #[napi]
    pub fn send(&self, msg: String) -> Result<()> {
        self.send_fds(msg, vec![])
    }

    /// Sends one message with descriptors of this process attached
    /// (SCM_RIGHTS); they stay open here.
    #[napi]
    pub fn send_fds(&self, msg: String, fds: Vec<i32>) -> Result<()> {
        let fd = self.get()?;
        use std::os::fd::AsFd;
        tsbox_core::wire::send(fd.get_ref().as_fd(), msg.as_bytes(), &fds).map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("send to tsbox-init: {e} ({})", tsbox_core::errno_name(e.errno())),
            )
        })
    }

    /// The next message, or null once the other end has closed. Rejects
    /// with "cancelled" when `cancelRecv` is called after this call and
    /// before a message comes (the message then stays for the next call).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn recv<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<String>>> {
        use std::sync::atomic::Ordering::SeqCst;
        // Taken now, in the call: the future may first run after a cancelRecv
        // that follows at once (unref() right after spawn()).
        let epoch = self.cancels.load(SeqCst);
        let cancels = self.cancels.clone();
        let cancel = self.cancel.clone();
        let fd = self.get().ok();
        let received = self.received.clone();
        env.spawn_future(async move {
            let Some(fd) = fd else {
                return Ok(None);
            };
            let mut recv = std::pin::pin!(recv_on(fd, received));
            let mut cancelled = std::pin::pin!(cancel.notified());
            // Woken by any cancelRecv from here on; one that came before is counted.
            cancelled.as_mut().enable();
            if cancels.load(SeqCst) != epoch {
                return Err(Error::from_reason("cancelled"));
            }
            std::future::poll_fn(|cx| {
                use std::future::Future;
                use std::task::Poll;
                if let Poll::Ready(r) = recv.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                if cancelled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(Error::from_reason("cancelled")));
                }
                Poll::Pending
            })
            .await
        })
    }

    /// Makes a pending `recv` reject with "cancelled", so that its promise
    /// stops holding Node's event loop (Container.unref()); nothing when
    /// none is pending.
    #[napi]
    pub fn cancel_recv(&self) {
        self.cancels.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cancel.notify_waiters();
    }

    /// As `recv`, but calls `callback(err, msg)` instead of returning a
    /// promise, and does not hold Node's event loop open while it waits: what
    /// waits for the message decides that (a Container's keep-alive, which
    /// `unref()` releases).
    #[napi(ts_args_type = "callback: (err: Error | null, msg: string | null) => void")]
    pub fn recv_weak(&self, callback: Function<'_, Option<String>, ()>) -> Result<()> {
        let tsfn = callback
            .build_threadsafe_function::<Option<String>>()
            .weak::<true>()
            .callee_handled::<true>()
            .build()?;
        let fd = self.get().ok();
        let received = self.received.clone();
        napi::bindgen_prelude::spawn(async move {
            let r = match fd {
                Some(fd) => recv_on(fd, received).await,
                None => Ok(None),
            };
            tsfn.call(r, napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// The oldest descriptor that came with a message (a pty master), now the
    /// caller's to close; -1 when none is waiting.
    #[napi]
    pub fn take_fd(&self) -> i32 {
        use std::os::fd::IntoRawFd;
        self.received.lock().unwrap().pop_front().map(|fd| fd.into_raw_fd()).unwrap_or(-1)
    }

    /// Closes this end. A pending `recv` resolves to null.
    #[napi]
    pub fn close(&self) {
        self.close_child();
        self.received.lock().unwrap().clear();
        if let Some(fd) = self.fd.lock().unwrap().take() {
            // A recv in flight holds the descriptor too: the shutdown ends
            // its wait (null). Without one, dropping it closes the socket,
            // and no waiter needs waking.
            if Arc::strong_count(&fd) > 1 {
                let _ = socket::shutdown(fd.get_ref().as_raw_fd(), socket::Shutdown::Both);
            }
        }
    }
}

/// One message, and any descriptors attached to it (close-on-exec).
/// The next message on `fd`, or None once the other end has closed; the
/// descriptors that came with it go to `received`.
async fn recv_on(fd: Arc<AsyncFd<OwnedFd>>, received: Received) -> Result<Option<String>> {
    loop {
        let mut guard = fd
            .readable()
            .await
            .map_err(|e| Error::from_reason(format!("wait for tsbox-init: {e}")))?;
        match guard.try_io(|inner| recv_packet(inner.get_ref().as_raw_fd()).map_err(std::io::Error::from)) {
            Ok(Ok(Some((msg, fds)))) => {
                received.lock().unwrap().extend(fds);
                return Ok(Some(msg));
            }
            Ok(Ok(None)) => return Ok(None),
            // The helper exited with a message of ours unread (a signal
            // sent as the container ended). The kernel reports that once,
            // ahead of what is still queued for us: read on.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ECONNRESET) => continue,
            Ok(Err(e)) => return Err(Error::from_reason(format!("receive from tsbox-init: {e}"))),
            Err(_would_block) => continue,
        }
    }
}

fn recv_packet(fd: RawFd) -> std::result::Result<Option<(String, Vec<OwnedFd>)>, Errno> {
    // SAFETY: the channel's descriptor, alive for the duration of the call.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match tsbox_core::wire::recv_message(sock, true) {
        Ok(None) => Ok(None),
        Ok(Some((bytes, fds))) => String::from_utf8(bytes).map(|s| Some((s, fds))).map_err(|_| Errno::EPROTO),
        Err(tsbox_core::wire::WireError::Io(e)) => Err(e),
        Err(e) => Err(Errno::from_raw(e.errno())),
    }
}

/// A pipe, both ends close-on-exec: `[read, write]`, the caller's to close.
#[napi]
pub fn pipe() -> Result<Vec<i32>> {
    use std::os::fd::IntoRawFd;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("pipe2", e))?;
    Ok(vec![r.into_raw_fd(), w.into_raw_fd()])
}

/// Sets the size of the terminal whose master is `fd` (a container's tty); the
/// kernel sends SIGWINCH to its foreground process group.
#[napi]
pub fn set_window_size(fd: i32, cols: u16, rows: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize; a bad fd only makes it fail.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io_err("set the terminal size", Errno::last()));
    }
    Ok(())
}

/// The termios of the terminal on `fd`, to give back with `restoreTerminal`
/// after a container that shared it has ended; null when `fd` is not a
/// terminal.
#[napi]
pub fn save_terminal(fd: i32) -> Option<Buffer> {
    // SAFETY: termios is plain old data; tcgetattr fills it or fails.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return None;
    }
    // SAFETY: reading the bytes of a plain struct we own.
    let bytes = unsafe { std::slice::from_raw_parts((&t as *const libc::termios).cast::<u8>(), std::mem::size_of::<libc::termios>()) };
    Some(Buffer::from(bytes.to_vec()))
}

/// Puts the terminal on `fd` back as `saveTerminal` found it, and out of
/// exclusive mode (TIOCEXCL, which would keep its owner from opening it).
/// A container given the caller's terminal (without `-t`) may have changed
/// both; best effort, as the terminal may be gone.
#[napi]
pub fn restore_terminal(fd: i32, saved: Buffer) {
    if saved.len() != std::mem::size_of::<libc::termios>() {
        return;
    }
    // SAFETY: `saved` came from save_terminal: the bytes of a termios.
    let t: libc::termios = unsafe { std::ptr::read_unaligned(saved.as_ptr().cast::<libc::termios>()) };
    // SAFETY: ioctls on a descriptor the caller owns; a failure changes nothing.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        libc::ioctl(fd, libc::TIOCNXCL);
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock `--trace` offsets count from (the
/// same clock as process.hrtime, exposed so both sides agree by construction).
#[napi]
pub fn monotonic_ns() -> BigInt {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    BigInt::from(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}

/// What `lstatMany` says of a path: its owner, its mode bits (permissions,
/// setuid, setgid, sticky) and whether it is a directory (never a symlink's
/// target: the path itself).
#[napi(object)]
pub struct PathOwner {
    pub uid: u32,
    pub mode: u32,
    pub is_directory: bool,
}

/// lstat of each path, null where it fails (missing, or not readable). One
/// call for the image store's checks on a launch: the first `fs.lstatSync`
/// calls of a process cost ~0.3 ms, most of `tsbox run IMAGE`'s look-up.
#[napi]
pub fn lstat_many(paths: Vec<String>) -> Vec<Option<PathOwner>> {
    paths
        .iter()
        .map(|p| {
            nix::sys::stat::lstat(p.as_str()).ok().map(|st| PathOwner {
                uid: st.st_uid,
                mode: st.st_mode & 0o7777,
                is_directory: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            })
        })
        .collect()
}

/// The plan format version this addon's tsbox-init speaks.
#[napi]
pub const PLAN_VERSION: u32 = tsbox_core::PLAN_VERSION;

/// Sends the terminal master `fd` to the Unix stream socket at `path`, as an
/// OCI runtime's `--console-socket` takes it (runc's protocol, which conmon
/// and containerd speak): one message, the text `name`, with the descriptor
/// in SCM_RIGHTS.
#[napi]
pub fn send_console(path: String, fd: i32, name: String) -> Result<()> {
    use nix::sys::socket::{connect, sendmsg, socket, ControlMessage, MsgFlags};
    let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| io_err("socket", e))?;
    tsbox_core::wire::with_unix_addr(&path, |addr| connect(sock.as_raw_fd(), addr))
        .map_err(|e| io_err(&format!("connect to the console socket {path}"), e))?;
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err(&format!("send the terminal to the console socket {path}"), e)),
            Ok(_) => return Ok(()),
        }
    }
}
