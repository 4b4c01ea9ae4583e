//! tsbox-probe: placed inside test rootfs images, it reports what the process
//! sees (ids, maps, namespaces, capabilities, mounts, rlimits, cgroup, ...) as
//! JSON on stdout. It never panics on a missing /proc file: a field that cannot
//! be read is `null` and gets an entry in `errors`.
//!
//! Usage:
//!   tsbox-probe [info]
//!   tsbox-probe exists PATH...
//!   tsbox-probe write PATH
//!   tsbox-probe signals SECONDS
//!   tsbox-probe zombies N
//!   tsbox-probe forks
//!   tsbox-probe no-pdeathsig
//!   tsbox-probe tty-excl set|get
//!   tsbox-probe recvtty SOCKET INPUT
//!   tsbox-probe subreaper PIDFILE CMD [ARGS...]
//!   tsbox-probe seccomp-agent SOCKET OUT
//!   tsbox-probe syn IFNAME GATEWAY_MAC DST_IP PORT
//!   tsbox-probe udp IP PORT HEX
//!   tsbox-probe ping IP

mod net;
mod parse;

use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: tsbox-probe [info] | exists PATH... | write PATH | signals SECONDS | zombies N | syscalls | alloc MIB | forks | no-pdeathsig | tty-excl set|get | recvtty SOCKET INPUT | subreaper PIDFILE CMD [ARGS...] | seccomp-agent SOCKET OUT | syn IFNAME GATEWAY_MAC DST_IP PORT | udp IP PORT HEX | ping IP";

mod syscalls;

fn main() {
    // args_os: std::env::args() would panic on a non-UTF-8 argument.
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let code = match args.first().map(String::as_str) {
        None => cmd_info(),
        Some("info") if args.len() == 1 => cmd_info(),
        Some("exists") => cmd_exists(&args[1..]),
        Some("write") if args.len() == 2 => cmd_write(&args[1]),
        Some("signals") if args.len() == 2 => match args[1].parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => cmd_signals(s),
            _ => usage(&format!("bad SECONDS {:?}", args[1])),
        },
        Some("zombies") if args.len() == 2 => match args[1].parse::<u32>() {
            Ok(n) => cmd_zombies(n),
            _ => usage(&format!("bad N {:?}", args[1])),
        },
        Some("alloc") if args.len() == 2 => match args[1].parse::<usize>() {
            Ok(mib) => cmd_alloc(mib),
            _ => usage(&format!("bad MIB {:?}", args[1])),
        },
        Some("forks") if args.len() == 1 => cmd_forks(),
        Some("no-pdeathsig") if args.len() == 1 => cmd_no_pdeathsig(),
        Some("tty-excl") if args.len() == 2 && (args[1] == "set" || args[1] == "get") => cmd_tty_excl(args[1] == "set"),
        Some("recvtty") if args.len() == 3 => cmd_recvtty(&args[1], &args[2]),
        Some("subreaper") if args.len() >= 3 => cmd_subreaper(&args[1], &args[2..]),
        Some("seccomp-agent") if args.len() == 3 => cmd_seccomp_agent(&args[1], &args[2]),
        Some("syn") if args.len() == 5 => net::cmd_syn(&args[1], &args[2], &args[3], &args[4]),
        Some("udp") if args.len() == 4 => net::cmd_udp(&args[1], &args[2], &args[3]),
        Some("ping") if args.len() == 2 => net::cmd_ping(&args[1]),
        Some("syscalls") if args.len() == 1 => {
            out_line(&serde_json::to_string(&syscalls::run()).expect("a map of numbers serialises"));
            0
        }
        Some("-h" | "--help" | "help") => {
            out_line(USAGE);
            0
        }
        Some(other @ ("info" | "write" | "signals" | "zombies")) => usage(&format!("wrong number of arguments for {other}")),
        Some(other) => usage(&format!("unknown subcommand {other:?}")),
    };
    std::process::exit(code);
}

fn usage(msg: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "tsbox-probe: {msg}\n{USAGE}");
    2
}

/// Write one line to stdout and flush; errors (e.g. EPIPE) are ignored.
fn out_line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn out_json(v: &Value) {
    // Serializing a Value cannot fail (all keys are strings).
    out_line(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// An io::Error as text without std's " (os error N)" suffix.
fn io_msg(e: &std::io::Error) -> String {
    let msg = e.to_string();
    match e.raw_os_error() {
        Some(n) => match msg.strip_suffix(&format!(" (os error {n})")) {
            Some(m) => m.to_string(),
            None => msg,
        },
        None => msg,
    }
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", io_msg(&std::io::Error::last_os_error()))
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {}", io_msg(&e)))
}

// ---------------------------------------------------------------- info

/// Collects per-field failures.
struct Errors(Vec<Value>);

impl Errors {
    fn field<T: Serialize>(&mut self, name: &str, r: Result<T, String>) -> Value {
        match r {
            Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
            Err(e) => {
                self.0.push(json!({ "field": name, "error": e }));
                Value::Null
            }
        }
    }
}

fn cmd_info() -> i32 {
    let mut errs = Errors(Vec::new());
    let mut o = Map::new();

    // SAFETY (all unsafe blocks below): plain libc calls with valid pointers
    // into buffers we own.
    unsafe {
        o.insert("pid".into(), json!(libc::getpid()));
        o.insert("ppid".into(), json!(libc::getppid()));
        o.insert("uid".into(), json!(libc::getuid()));
        o.insert("gid".into(), json!(libc::getgid()));
        o.insert("euid".into(), json!(libc::geteuid()));
        o.insert("egid".into(), json!(libc::getegid()));
    }
    let v = errs.field("groups", groups());
    o.insert("groups".into(), v);
    let v = errs.field("uidMap", read("/proc/self/uid_map").and_then(|t| parse::parse_id_map(&t)));
    o.insert("uidMap".into(), v);
    let v = errs.field("gidMap", read("/proc/self/gid_map").and_then(|t| parse::parse_id_map(&t)));
    o.insert("gidMap".into(), v);
    let v = errs.field("setgroups", read("/proc/self/setgroups").map(|t| t.trim().to_string()));
    o.insert("setgroups".into(), v);
    let v = errs.field("hostname", hostname());
    o.insert("hostname".into(), v);

    let mut ns = Map::new();
    for name in ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let path = format!("/proc/self/ns/{name}");
        let r = std::fs::read_link(&path)
            .map_err(|e| format!("{path}: {}", io_msg(&e)))
            .and_then(|t| parse::parse_ns_link(&t.to_string_lossy()));
        ns.insert(name.into(), errs.field(&format!("ns.{name}"), r));
    }
    o.insert("ns".into(), Value::Object(ns));

    let v = match read("/proc/self/status") {
        Ok(text) => {
            let st = parse::parse_status(&text);
            let mut m = Map::new();
            for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                let r = st.get(key).cloned().ok_or_else(|| format!("no {key} line in /proc/self/status"));
                m.insert(key.into(), errs.field(&format!("status.{key}"), r));
            }
            for key in ["NoNewPrivs", "Seccomp"] {
                let r = st
                    .get(key)
                    .ok_or_else(|| format!("no {key} line in /proc/self/status"))
                    .and_then(|s| s.parse::<u64>().map_err(|_| format!("bad {key} value {s:?}")));
                m.insert(key.into(), errs.field(&format!("status.{key}"), r));
            }
            Value::Object(m)
        }
        Err(e) => errs.field::<()>("status", Err(e)),
    };
    o.insert("status".into(), v);

    let v = errs.field("mounts", read("/proc/self/mountinfo").and_then(|t| parse::parse_mountinfo(&t)));
    o.insert("mounts".into(), v);
    let v = rlimits(&mut errs);
    o.insert("rlimits".into(), v);
    let v = errs.field(
        "cgroup",
        read("/proc/self/cgroup").map(|t| t.lines().map(str::to_string).collect::<Vec<_>>()),
    );
    o.insert("cgroup".into(), v);
    let v = errs.field(
        "cwd",
        std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| format!("getcwd: {}", io_msg(&e))),
    );
    o.insert("cwd".into(), v);

    let ifaces = read("/proc/net/dev").map(|t| parse::parse_net_dev(&t));
    let up = match &ifaces {
        Ok(names) => interfaces_up(names, &mut errs),
        Err(_) => Err("interface list unavailable".to_string()),
    };
    let v = errs.field("interfaces", ifaces);
    o.insert("interfaces".into(), v);
    let v = errs.field("interfacesUp", up);
    o.insert("interfacesUp".into(), v);

    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    o.insert("env".into(), json!(env));

    let sid = unsafe { libc::getsid(0) };
    let v = errs.field("sid", if sid < 0 { Err(os_err("getsid")) } else { Ok(sid) });
    o.insert("sid".into(), v);
    o.insert("pgid".into(), json!(unsafe { libc::getpgrp() }));

    o.insert("errors".into(), Value::Array(errs.0));
    out_json(&Value::Object(o));
    0
}

fn groups() -> Result<Vec<libc::gid_t>, String> {
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n < 0 {
            return Err(os_err("getgroups"));
        }
        let mut v: Vec<libc::gid_t> = vec![0; n as usize];
        let n = libc::getgroups(n, v.as_mut_ptr());
        if n < 0 {
            return Err(os_err("getgroups"));
        }
        v.truncate(n as usize);
        Ok(v)
    }
}

fn hostname() -> Result<String, String> {
    let mut buf = [0u8; 256];
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if r != 0 {
        return Err(os_err("gethostname"));
    }
    let s = CStr::from_bytes_until_nul(&buf).map_err(|_| "gethostname: unterminated".to_string())?;
    Ok(s.to_string_lossy().into_owned())
}

fn rlimits(errs: &mut Errors) -> Value {
    let list = [
        ("as", libc::RLIMIT_AS),
        ("core", libc::RLIMIT_CORE),
        ("cpu", libc::RLIMIT_CPU),
        ("data", libc::RLIMIT_DATA),
        ("fsize", libc::RLIMIT_FSIZE),
        ("locks", libc::RLIMIT_LOCKS),
        ("memlock", libc::RLIMIT_MEMLOCK),
        ("msgqueue", libc::RLIMIT_MSGQUEUE),
        ("nice", libc::RLIMIT_NICE),
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
        ("rss", libc::RLIMIT_RSS),
        ("rtprio", libc::RLIMIT_RTPRIO),
        ("rttime", libc::RLIMIT_RTTIME),
        ("sigpending", libc::RLIMIT_SIGPENDING),
        ("stack", libc::RLIMIT_STACK),
    ];
    let lim = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            Value::Null
        } else {
            json!(v)
        }
    };
    let mut m = Map::new();
    for (name, res) in list {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        let r = if unsafe { libc::getrlimit(res, &mut rl) } == 0 {
            Ok(json!({ "soft": lim(rl.rlim_cur), "hard": lim(rl.rlim_max) }))
        } else {
            Err(os_err(&format!("getrlimit({name})")))
        };
        m.insert(name.into(), errs.field(&format!("rlimits.{name}"), r));
    }
    Value::Object(m)
}

/// `struct ifreq` with the `ifr_flags` member of the union (40 bytes on LP64).
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn interfaces_up(names: &[String], errs: &mut Errors) -> Result<Vec<String>, String> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err("socket(AF_INET, SOCK_DGRAM)"));
    }
    let mut up = Vec::new();
    for name in names {
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        let bytes = name.as_bytes();
        if bytes.len() >= libc::IFNAMSIZ {
            errs.0
                .push(json!({ "field": "interfacesUp", "error": format!("interface name too long: {name:?}") }));
            continue;
        }
        for (d, s) in req.name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req as *mut IfReqFlags) };
        if r < 0 {
            let e = os_err(&format!("SIOCGIFFLAGS {name}"));
            errs.0.push(json!({ "field": "interfacesUp", "error": e }));
            continue;
        }
        if (req.flags as libc::c_int) & libc::IFF_UP != 0 {
            up.push(name.clone());
        }
    }
    unsafe { libc::close(fd) };
    Ok(up)
}

// ---------------------------------------------------------------- exists / write

fn cmd_exists(paths: &[String]) -> i32 {
    let m: Map<String, Value> = paths
        .iter()
        .map(|p| (p.clone(), Value::Bool(std::fs::symlink_metadata(p).is_ok())))
        .collect();
    out_json(&Value::Object(m));
    0
}

fn cmd_write(path: &str) -> i32 {
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(b"x"));
    let v = match r {
        Ok(()) => json!({ "ok": true, "errno": null, "error": null }),
        Err(e) => json!({ "ok": false, "errno": e.raw_os_error(), "error": io_msg(&e) }),
    };
    out_json(&v);
    0
}

// ---------------------------------------------------------------- signals

const SIGNALS: [(libc::c_int, &str); 5] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
];

extern "C" fn noop_handler(_: libc::c_int) {}

fn cmd_signals(seconds: f64) -> i32 {
    // Block the signals first, then install (no-op) handlers, then collect them
    // with sigtimedwait. The handlers matter when the probe is PID 1 of a pid
    // namespace: the kernel drops signals to such a process whose disposition
    // is SIG_DFL, and a real handler makes the probe look like a normal program.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for (s, _) in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            let _ = writeln!(std::io::stderr(), "tsbox-probe: {}", os_err("sigprocmask"));
            return 1;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        for (s, name) in SIGNALS {
            if libc::sigaction(s, &sa, std::ptr::null_mut()) != 0 {
                let _ = writeln!(std::io::stderr(), "tsbox-probe: {}", os_err(&format!("sigaction({name})")));
                return 1;
            }
        }
    }
    out_line("ready");

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return 0;
        }
        let rem = deadline - now;
        let ts = libc::timespec {
            tv_sec: rem.as_secs() as _,
            tv_nsec: rem.subsec_nanos() as _,
        };
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigtimedwait(&set, &mut info, &ts) };
        if sig > 0 {
            let name = SIGNALS.iter().find(|(s, _)| *s == sig).map(|(_, n)| *n).unwrap_or("SIG?");
            out_line(name);
            if sig == libc::SIGTERM {
                return 100 + sig;
            }
            continue;
        }
        match errno() {
            libc::EAGAIN => return 0,
            libc::EINTR => continue,
            _ => {
                let _ = writeln!(std::io::stderr(), "tsbox-probe: {}", os_err("sigtimedwait"));
                return 1;
            }
        }
    }
}

// ---------------------------------------------------------------- zombies

fn cmd_zombies(n: u32) -> i32 {
    // If SIGCHLD were inherited as SIG_IGN the kernel would auto-reap the
    // children and the check would pass vacuously; make sure it is SIG_DFL.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let mut spawned = 0u32;
    let mut errors = Vec::new();
    for _ in 0..n {
        // SAFETY: this process is single-threaded; the child only calls _exit.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            pid if pid > 0 => spawned += 1,
            _ => errors.push(os_err("fork")),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    if errors.is_empty() {
        out_json(&json!({ "spawned": spawned }));
    } else {
        out_json(&json!({ "spawned": spawned, "errors": errors }));
    }
    0
}

/// `forks`: a fork bomb that holds what it got. Forks until the kernel
/// refuses (each child only waits), prints {"forked": N, "errno": E} and
/// waits to be killed, with every child alive: what a pids limit bounds.
fn cmd_forks() -> i32 {
    let mut forked = 0u64;
    let errno = loop {
        // SAFETY: single-threaded; the child only pauses until it is killed.
        match unsafe { libc::fork() } {
            0 => loop {
                unsafe { libc::pause() };
            },
            pid if pid > 0 => forked += 1,
            _ => break errno(),
        }
    };
    out_json(&json!({ "forked": forked, "errno": errno }));
    loop {
        unsafe { libc::pause() };
    }
}

/// `no-pdeathsig`: clears its own parent-death signal (as any PID 1 of
/// --no-init may), prints "cleared" and waits to be killed.
fn cmd_no_pdeathsig() -> i32 {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) } != 0 {
        out_json(&json!({ "errno": errno() }));
        return 1;
    }
    out_line("cleared");
    loop {
        unsafe { libc::pause() };
    }
}

/// `tty-excl set`: puts the terminal on stdin in exclusive mode (TIOCEXCL)
/// and exits, leaving it so; `tty-excl get`: prints {"exclusive": 0|1} of
/// the terminal on stdin (TIOCGEXCL), or {"errno": E}.
fn cmd_tty_excl(set: bool) -> i32 {
    const TIOCGEXCL: libc::c_ulong = 0x8004_5440;
    // SAFETY: ioctls on fd 0 with an int out-parameter for the query.
    let (r, value) = unsafe {
        if set {
            (libc::ioctl(0, libc::TIOCEXCL), 1)
        } else {
            let mut v: libc::c_int = 0;
            (libc::ioctl(0, TIOCGEXCL, &mut v), v)
        }
    };
    if r < 0 {
        out_json(&json!({ "errno": errno() }));
        return 1;
    }
    out_json(&json!({ "exclusive": value }));
    0
}

/// `recvtty SOCKET INPUT`, on the host: an OCI runtime's console socket, as
/// runc's recvtty is. Listens on SOCKET (a Unix stream socket), takes one
/// terminal master sent with SCM_RIGHTS, writes INPUT to it, and copies what
/// the terminal prints to stdout until its last slave is closed.
/// Listens on `socket` (calling `ready` once it does), takes one
/// connection and its one message: up to `size` bytes, and the descriptor
/// that must come with them (SCM_RIGHTS).
fn accept_fd(socket: &str, size: usize, ready: impl FnOnce()) -> Result<(Vec<u8>, std::os::fd::OwnedFd), String> {
    use std::os::unix::net::UnixListener;
    let listener = UnixListener::bind(socket).map_err(|e| format!("bind {socket}: {}", io_msg(&e)))?;
    ready();
    let (conn, _) = listener.accept().map_err(|e| format!("accept: {}", io_msg(&e)))?;
    recv_fd(&conn, size)
}

/// One message on `conn`: up to `size` bytes, and the descriptor that must come with them.
fn recv_fd(conn: &std::os::unix::net::UnixStream, size: usize) -> Result<(Vec<u8>, std::os::fd::OwnedFd), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut payload = vec![0u8; size];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain old data; zeroed is valid, then filled in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: recvmsg into buffers we own, described by msg.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(format!("recvmsg: errno {}", errno()));
    }
    payload.truncate(n as usize);
    // SAFETY: walking the control buffer the kernel filled, with its macros.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_level != libc::SOL_SOCKET || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err("no descriptor came with the message".into());
        }
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()))
    };
    Ok((payload, fd))
}

/// A seccomp agent, as the runtime-spec describes one: listens on SOCKET,
/// takes the message a runtime sends on each connection (the
/// containerProcessState, with a listener), writes the first to OUT and the
/// n-th to OUT.n, and answers every notified call with EOPNOTSUPP, appending
/// `notified NR` to OUT.calls, until it is killed.
fn cmd_seccomp_agent(socket: &str, out: &str) -> i32 {
    use std::os::unix::net::UnixListener;
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => return usage(&format!("bind {socket}: {}", io_msg(&e))),
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    // One connection a process whose filter has a listener: the first
    // container's, then each exec'd one's, answered side by side.
    for n in 0.. {
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) => return usage(&format!("accept: {}", io_msg(&e))),
        };
        let (payload, notify) = match recv_fd(&conn, 65536) {
            Ok(r) => r,
            Err(e) => return usage(&e),
        };
        let file = if n == 0 { out.to_string() } else { format!("{out}.{n}") };
        if let Err(e) = std::fs::write(&file, &payload) {
            return usage(&format!("write {file}: {}", io_msg(&e)));
        }
        let calls = format!("{out}.calls");
        std::thread::spawn(move || answer_notifications(notify, &calls));
    }
    0
}

/// Answers every call notified on `notify` with EOPNOTSUPP, appending
/// `notified NR` to `calls`, until no process is left under the filter.
fn answer_notifications(notify: std::os::fd::OwnedFd, calls: &str) {
    use std::os::fd::AsRawFd;
    // <linux/seccomp.h>: struct seccomp_notif (80 bytes) and seccomp_notif_resp (24).
    #[repr(C)]
    struct Notif {
        id: u64,
        pid: u32,
        flags: u32,
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }
    #[repr(C)]
    struct Resp {
        id: u64,
        val: i64,
        error: i32,
        flags: u32,
    }
    const RECV: libc::c_ulong = 0xc050_2100;
    const SEND: libc::c_ulong = 0xc018_2101;
    loop {
        // SAFETY: the kernel wants a zeroed struct; all fields are integers.
        let mut req: Notif = unsafe { std::mem::zeroed() };
        // SAFETY: SECCOMP_IOCTL_NOTIF_RECV fills req.
        if unsafe { libc::ioctl(notify.as_raw_fd(), RECV, &mut req) } < 0 {
            // ENOENT: no process is left under the filter.
            return;
        }
        // O_APPEND: one short write each, whole, whichever thread writes.
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(calls) {
            let _ = writeln!(f, "notified {}", req.nr);
        }
        let resp = Resp {
            id: req.id,
            val: 0,
            error: -libc::EOPNOTSUPP,
            flags: 0,
        };
        // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads resp. A process gone meanwhile is ENOENT: go on.
        unsafe { libc::ioctl(notify.as_raw_fd(), SEND, &resp) };
    }
}

fn cmd_recvtty(socket: &str, input: &str) -> i32 {
    use std::io::Read;
    let master = match accept_fd(socket, 4096, || {}) {
        Ok((_, fd)) => fd,
        Err(e) => return usage(&e),
    };
    let mut tty = std::fs::File::from(master);
    if let Err(e) = tty.write_all(input.replace("\\n", "\n").as_bytes()) {
        return usage(&format!("write to the terminal: {}", io_msg(&e)));
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tty.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: the last slave is closed (the container's process ended).
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return usage(&format!("read the terminal: {}", io_msg(&e))),
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    0
}

/// `subreaper PIDFILE CMD...`, on the host: what conmon and containerd's shim
/// are to an OCI runtime. A child subreaper runs CMD (the runtime's create),
/// reads the container's pid from PIDFILE, prints {"created": PID}, and waits
/// for that process as its child: {"exited": CODE, "signal": SIG} when it ends.
fn cmd_subreaper(pidfile: &str, cmd: &[String]) -> i32 {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return usage(&format!("PR_SET_CHILD_SUBREAPER: errno {}", errno()));
    }
    match std::process::Command::new(&cmd[0]).args(&cmd[1..]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            out_json(&json!({ "createFailed": s.code() }));
            return 1;
        }
        Err(e) => return usage(&format!("run {}: {}", cmd[0], io_msg(&e))),
    }
    let pid: libc::pid_t = match std::fs::read_to_string(pidfile).ok().and_then(|s| s.trim().parse().ok()) {
        Some(p) => p,
        None => return usage(&format!("no pid in {pidfile}")),
    };
    out_json(&json!({ "created": pid }));
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a pointer to a local.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            out_json(&json!({ "lost": pid, "errno": errno() }));
            return 1;
        }
        // Others (the runtime's own processes reparented here) are reaped and passed over.
        if r == pid {
            let (code, signal) = if libc::WIFEXITED(status) {
                (Some(libc::WEXITSTATUS(status)), None)
            } else {
                (None, Some(libc::WTERMSIG(status)))
            };
            out_json(&json!({ "exited": code, "signal": signal }));
            return 0;
        }
    }
}

/// `alloc MIB`: allocates and touches MIB MiB (every page), holds it for 200 ms,
/// prints {"allocated": MIB} and exits: a workload of a known size.
fn cmd_alloc(mib: usize) -> i32 {
    let mut blocks = Vec::with_capacity(mib);
    for _ in 0..mib {
        let mut b = vec![0u8; 1 << 20];
        for page in b.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(b);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    out_line(&format!("{{\"allocated\":{}}}", blocks.len()));
    0
}
