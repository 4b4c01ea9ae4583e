//! The OCI runtime-spec `linux.seccomp` object: its model, reading it from JSON
//! with the path of every problem, and the checks that refuse what tsbox cannot
//! honour instead of dropping it.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{is_known_syscall, Problems, SeccompError, MAX_ERRNO};

const EPERM: u32 = 1;

/// Architecture names an OCI profile may list (runtime-spec, config-linux.md).
pub const ARCHITECTURES: [&str; 20] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
];

/// Filter flags an OCI profile may list.
pub const FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// A seccomp profile in the shape of the OCI runtime-spec `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    /// The errno of an ERRNO (or the message of a TRACE) default action; EPERM when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Accepted for compatibility; the filter is compiled for the host's native
    /// ABI, and a call through any other ABI kills the process (module docs),
    /// x32's included even when SCMP_ARCH_X32 is listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SyscallRule>,
}

/// One entry of `syscalls`: these calls, when every condition holds, get this action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: Action,
    /// The errno of an ERRNO (or the message of a TRACE) action; EPERM when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

/// A condition on one argument. For `SCMP_CMP_MASKED_EQ`, `value` is the mask
/// and `valueTwo` what the masked argument must equal; the other operators
/// compare the argument with `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: Op,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    /// libseccomp's SCMP_ACT_KILL, which kills the thread.
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Needs a seccomp agent on `listenerPath`: refused.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

const ACTIONS: [(&str, Action); 9] = [
    ("SCMP_ACT_KILL", Action::Kill),
    ("SCMP_ACT_KILL_PROCESS", Action::KillProcess),
    ("SCMP_ACT_KILL_THREAD", Action::KillThread),
    ("SCMP_ACT_TRAP", Action::Trap),
    ("SCMP_ACT_ERRNO", Action::Errno),
    ("SCMP_ACT_TRACE", Action::Trace),
    ("SCMP_ACT_ALLOW", Action::Allow),
    ("SCMP_ACT_LOG", Action::Log),
    ("SCMP_ACT_NOTIFY", Action::Notify),
];

pub(crate) fn action_names() -> String {
    ACTIONS.map(|(n, _)| n).join(", ")
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        ACTIONS.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }

    pub fn name(self) -> &'static str {
        ACTIONS.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// True for the actions that carry `errnoRet`.
    pub fn takes_errno(self) -> bool {
        matches!(self, Action::Errno | Action::Trace)
    }

    /// What the filter returns, with the errno (EPERM when none is given).
    /// `None` for NOTIFY, which seccompiler does not name (SECCOMP_RET_USER_NOTIF).
    pub(crate) fn resolve(self, errno_ret: Option<u32>) -> Option<seccompiler::SeccompAction> {
        use seccompiler::SeccompAction as S;
        let errno = errno_ret.unwrap_or(EPERM);
        Some(match self {
            // libseccomp: SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD.
            Action::Kill | Action::KillThread => S::KillThread,
            Action::KillProcess => S::KillProcess,
            Action::Trap => S::Trap,
            Action::Errno => S::Errno(errno),
            Action::Trace => S::Trace(errno),
            Action::Allow => S::Allow,
            Action::Log => S::Log,
            Action::Notify => return None,
        })
    }

    fn describe(self, errno_ret: Option<u32>) -> String {
        if self.takes_errno() {
            format!("{}({})", self.name(), errno_ret.unwrap_or(EPERM))
        } else {
            self.name().to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

const OPS: [(&str, Op); 7] = [
    ("SCMP_CMP_NE", Op::Ne),
    ("SCMP_CMP_LT", Op::Lt),
    ("SCMP_CMP_LE", Op::Le),
    ("SCMP_CMP_EQ", Op::Eq),
    ("SCMP_CMP_GE", Op::Ge),
    ("SCMP_CMP_GT", Op::Gt),
    ("SCMP_CMP_MASKED_EQ", Op::MaskedEq),
];

pub(crate) fn op_names() -> String {
    OPS.map(|(n, _)| n).join(", ")
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        OPS.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
    }

    pub fn name(self) -> &'static str {
        OPS.iter().find(|(_, o)| *o == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// Whether an argument satisfies the condition (the reference the compiled
    /// filter is tested against).
    pub fn holds(self, arg: u64, value: u64, value_two: u64) -> bool {
        match self {
            Op::Ne => arg != value,
            Op::Lt => arg < value,
            Op::Le => arg <= value,
            Op::Eq => arg == value,
            Op::Ge => arg >= value,
            Op::Gt => arg > value,
            Op::MaskedEq => arg & value == value_two,
        }
    }
}

impl Profile {
    /// Reads a profile from JSON. Every problem is reported with its JSON path;
    /// a profile that reads cleanly has also passed [`Profile::validate`].
    pub fn from_json(text: &str) -> Result<Profile, Problems> {
        Profile::from_json_for(text, Agent::Given)
    }

    /// [`Profile::from_json`] where `agent` says whether a seccomp agent can
    /// get the listener of SCMP_ACT_NOTIFY rules.
    pub fn from_json_for(text: &str, agent: Agent) -> Result<Profile, Problems> {
        let value: Value = serde_json::from_str(text).map_err(|e| SeccompError::Json { message: e.to_string() })?;
        Profile::from_value_for(&value, agent)
    }

    pub fn from_value(value: &Value) -> Result<Profile, Problems> {
        Profile::from_value_for(value, Agent::Given)
    }

    fn from_value_for(value: &Value, agent: Agent) -> Result<Profile, Problems> {
        let mut r = Reader::default();
        let profile = r.profile(value);
        match profile {
            Some(p) if r.problems.is_empty() => {
                p.validate_for(agent)?;
                Ok(p)
            }
            _ => Err(Problems(r.problems)),
        }
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a profile always serialises")
    }

    /// The checks beyond the shape: names that are system calls, errno ranges,
    /// argument indexes, operators used with the values they take, one
    /// unconditional action per call, and no feature tsbox would have to drop.
    pub fn validate(&self) -> Result<(), Problems> {
        self.validate_for(Agent::Given)
    }

    /// [`Profile::validate`] where `agent` says whether SCMP_ACT_NOTIFY rules
    /// can have a seccomp agent (with [`Agent::None`] each is a problem).
    pub fn validate_for(&self, agent: Agent) -> Result<(), Problems> {
        let mut problems = Vec::new();
        let mut p = |e: SeccompError| problems.push(e);
        if self.default_action == Action::Notify {
            p(notify("defaultAction"));
        }
        if let Some(e) = self.default_errno_ret {
            check_errno(&mut p, "defaultErrnoRet", e, self.default_action);
        }
        for (i, a) in self.architectures.iter().enumerate() {
            if !ARCHITECTURES.contains(&a.as_str()) {
                p(SeccompError::UnknownArch {
                    path: format!("architectures[{i}]"),
                    value: a.clone(),
                });
            }
        }
        for (i, f) in self.flags.iter().enumerate() {
            let path = format!("flags[{i}]");
            match f.as_str() {
                // The filter is loaded by a single-threaded process: TSYNC holds trivially.
                "SECCOMP_FILTER_FLAG_TSYNC" => {}
                "SECCOMP_FILTER_FLAG_LOG" | "SECCOMP_FILTER_FLAG_SPEC_ALLOW" | "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => {
                    p(SeccompError::Unsupported {
                        path,
                        what: f.clone(),
                        why: "tsbox loads filters without flags",
                    })
                }
                _ => p(SeccompError::UnknownFlag { path, value: f.clone() }),
            }
        }
        let listener = self.listener_path.as_deref().unwrap_or("");
        if !listener.is_empty() && !listener.starts_with('/') {
            p(SeccompError::Invalid {
                path: "listenerPath".into(),
                message: format!("{listener:?} must be an absolute path (the seccomp agent's Unix socket)"),
            });
        }
        // name -> (action, errno, index of the rule) of its unconditional rule.
        let mut unconditional: HashMap<&str, (Action, Option<u32>, usize)> = HashMap::new();
        for (i, rule) in self.syscalls.iter().enumerate() {
            let at = format!("syscalls[{i}]");
            if rule.names.is_empty() {
                p(SeccompError::Invalid {
                    path: format!("{at}.names"),
                    message: "must name at least one system call".into(),
                });
            }
            if rule.action == Action::Notify {
                if agent == Agent::None {
                    p(SeccompError::Invalid {
                        path: format!("{at}.action"),
                        message: NO_AGENT.into(),
                    });
                } else if listener.is_empty() {
                    p(SeccompError::Invalid {
                        path: format!("{at}.action"),
                        message: "SCMP_ACT_NOTIFY needs listenerPath, the seccomp agent's socket that gets the notification descriptor"
                            .into(),
                    });
                }
                // The descriptor goes to the agent with sendmsg once the filter is
                // loaded: notified, it would wait for an agent that has nothing yet.
                for (k, name) in rule.names.iter().enumerate() {
                    if NOT_NOTIFIABLE.contains(&name.as_str()) {
                        p(SeccompError::Unsupported {
                            path: format!("{at}.names[{k}]"),
                            what: format!("SCMP_ACT_NOTIFY for {name}"),
                            why: "the runtime sends the agent its descriptor with it, after the filter is loaded",
                        });
                    }
                }
            }
            if let Some(e) = rule.errno_ret {
                check_errno(&mut p, &format!("{at}.errnoRet"), e, rule.action);
            }
            let mut seen = [None::<usize>; 6];
            for (j, arg) in rule.args.iter().enumerate() {
                let ap = format!("{at}.args[{j}]");
                match seen.get_mut(arg.index as usize) {
                    None => p(SeccompError::Invalid {
                        path: format!("{ap}.index"),
                        message: format!("argument index {} is out of range: system calls have arguments 0 to 5", arg.index),
                    }),
                    Some(Some(first)) => p(SeccompError::Invalid {
                        path: format!("{ap}.index"),
                        message: format!(
                            "a second condition on argument {} (the first is {at}.args[{first}]); conditions of a rule must all hold, and runc would OR these — write separate rules instead",
                            arg.index
                        ),
                    }),
                    Some(slot) => *slot = Some(j),
                }
                if arg.op != Op::MaskedEq && arg.value_two != 0 {
                    p(SeccompError::Invalid {
                        path: format!("{ap}.valueTwo"),
                        message: format!(
                            "only SCMP_CMP_MASKED_EQ uses valueTwo; {} compares the argument with value",
                            arg.op.name()
                        ),
                    });
                }
                if arg.op == Op::MaskedEq && arg.value_two & !arg.value != 0 {
                    p(SeccompError::Invalid {
                        path: format!("{ap}.valueTwo"),
                        message: format!(
                            "{:#x} has bits outside the mask {:#x}, so the condition could never hold",
                            arg.value_two, arg.value
                        ),
                    });
                }
            }
            for (k, name) in rule.names.iter().enumerate() {
                // Formatted only for a problem: the default profile names hundreds of calls.
                let np = || format!("{at}.names[{k}]");
                if !is_known_syscall(name) {
                    p(SeccompError::UnknownSyscall {
                        path: np(),
                        name: name.clone(),
                    });
                    continue;
                }
                if !rule.args.is_empty() || rule.action == Action::Notify {
                    continue;
                }
                match unconditional.get(name.as_str()) {
                    None => {
                        unconditional.insert(name, (rule.action, rule.errno_ret, i));
                    }
                    Some((a, e, first)) => {
                        if a.resolve(*e) != rule.action.resolve(rule.errno_ret) {
                            p(SeccompError::Invalid {
                                path: np(),
                                message: format!(
                                    "{name:?} already has the unconditional action {} at syscalls[{first}]; a system call takes one action when no argument condition applies",
                                    a.describe(*e)
                                ),
                            });
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }
}

/// Whether the container's process can hand a seccomp agent the listener
/// of its SCMP_ACT_NOTIFY rules: only an OCI bundle's can
/// (linux.seccomp.listenerPath); `tsbox run` and the API have no agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Given,
    None,
}

const NO_AGENT: &str = "SCMP_ACT_NOTIFY needs a seccomp agent, which tsbox hands a listener only in an OCI bundle (linux.seccomp.listenerPath); use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS";

fn notify(path: &str) -> SeccompError {
    SeccompError::Unsupported {
        path: path.into(),
        what: "SCMP_ACT_NOTIFY".into(),
        why: "as the default action every system call would wait for the agent, the runtime's own sendmsg of its descriptor too (runc refuses it as well)",
    }
}

/// What the process itself calls between loading a filter with a listener
/// and handing the agent its descriptor.
const NOT_NOTIFIABLE: [&str; 3] = ["sendmsg", "sendto", "seccomp"];

impl Profile {
    /// Whether a rule notifies a seccomp agent (`listenerPath`).
    pub fn notifies(&self) -> bool {
        self.syscalls.iter().any(|r| r.action == Action::Notify)
    }
}

fn check_errno(p: &mut impl FnMut(SeccompError), path: &str, errno: u32, action: Action) {
    if !action.takes_errno() {
        p(SeccompError::Invalid {
            path: path.into(),
            message: format!(
                "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, and the action is {}",
                action.name()
            ),
        });
    } else if errno > MAX_ERRNO {
        p(SeccompError::Invalid {
            path: path.into(),
            message: format!("{errno} is above the largest errno, {MAX_ERRNO}"),
        });
    }
}

fn key(base: &str, k: &str) -> String {
    if base.is_empty() {
        k.to_string()
    } else {
        format!("{base}.{k}")
    }
}

/// Walks the JSON, collecting every problem of shape and vocabulary.
#[derive(Default)]
struct Reader {
    problems: Vec<SeccompError>,
}

impl Reader {
    fn object<'v>(&mut self, v: &'v Value, path: &str, fields: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.problems.push(SeccompError::Type {
                path: path.into(),
                expected: "an object",
            });
            return None;
        };
        for k in obj.keys() {
            if !fields.contains(&k.as_str()) {
                self.problems.push(SeccompError::UnknownField { path: key(path, k) });
            }
        }
        Some(obj)
    }

    /// A field that must be there (and not null).
    fn required<'v>(&mut self, obj: &'v Map<String, Value>, path: &str, k: &str) -> Option<&'v Value> {
        match obj.get(k) {
            None | Some(Value::Null) => {
                self.problems.push(SeccompError::Missing { path: key(path, k) });
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A field that may be missing; null counts as missing (Go encoders write nil slices as null).
    fn optional<'v>(obj: &'v Map<String, Value>, k: &str) -> Option<&'v Value> {
        obj.get(k).filter(|v| !v.is_null())
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.problems.push(SeccompError::Type {
                    path: path.into(),
                    expected: "a string",
                });
                None
            }
        }
    }

    fn u64(&mut self, v: &Value, path: &str) -> Option<u64> {
        match v.as_u64() {
            Some(n) => Some(n),
            None => {
                self.problems.push(SeccompError::Type {
                    path: path.into(),
                    expected: "an integer from 0 to 2^64-1",
                });
                None
            }
        }
    }

    fn u32(&mut self, v: &Value, path: &str) -> Option<u32> {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                self.problems.push(SeccompError::Type {
                    path: path.into(),
                    expected: "an integer from 0 to 2^32-1",
                });
                None
            }
        }
    }

    fn array<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match v.as_array() {
            Some(a) => Some(a),
            None => {
                self.problems.push(SeccompError::Type {
                    path: path.into(),
                    expected: "an array",
                });
                None
            }
        }
    }

    fn strings(&mut self, v: Option<&Value>, path: &str) -> Vec<String> {
        let Some(v) = v else { return Vec::new() };
        let Some(items) = self.array(v, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.string(s, &format!("{path}[{i}]")))
            .collect()
    }

    fn action(&mut self, v: &Value, path: &str) -> Option<Action> {
        let s = self.string(v, path)?;
        let a = Action::parse(&s);
        if a.is_none() {
            self.problems.push(SeccompError::UnknownAction {
                path: path.into(),
                value: s,
            });
        }
        a
    }

    fn profile(&mut self, v: &Value) -> Option<Profile> {
        let fields = [
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "flags",
            "listenerPath",
            "listenerMetadata",
            "syscalls",
        ];
        let obj = self.object(v, "", &fields)?;
        let default_action = self
            .required(obj, "", "defaultAction")
            .and_then(|v| self.action(v, "defaultAction"));
        let default_errno_ret = Self::optional(obj, "defaultErrnoRet").and_then(|v| self.u32(v, "defaultErrnoRet"));
        let architectures = self.strings(Self::optional(obj, "architectures"), "architectures");
        let flags = self.strings(Self::optional(obj, "flags"), "flags");
        let listener_path = Self::optional(obj, "listenerPath").and_then(|v| self.string(v, "listenerPath"));
        let listener_metadata = Self::optional(obj, "listenerMetadata").and_then(|v| self.string(v, "listenerMetadata"));
        let mut syscalls = Vec::new();
        if let Some(list) = Self::optional(obj, "syscalls").and_then(|v| self.array(v, "syscalls")) {
            for (i, item) in list.iter().enumerate() {
                if let Some(rule) = self.rule(item, &format!("syscalls[{i}]")) {
                    syscalls.push(rule);
                }
            }
        }
        Some(Profile {
            default_action: default_action?,
            default_errno_ret,
            architectures,
            flags,
            listener_path,
            listener_metadata,
            syscalls,
        })
    }

    fn rule(&mut self, v: &Value, path: &str) -> Option<SyscallRule> {
        let obj = self.object(v, path, &["names", "action", "errnoRet", "args"])?;
        let names_path = key(path, "names");
        let names = self.required(obj, path, "names").map(|v| self.strings(Some(v), &names_path));
        let action = self
            .required(obj, path, "action")
            .and_then(|v| self.action(v, &key(path, "action")));
        let errno_ret = Self::optional(obj, "errnoRet").and_then(|v| self.u32(v, &key(path, "errnoRet")));
        let mut args = Vec::new();
        let args_path = key(path, "args");
        if let Some(list) = Self::optional(obj, "args").and_then(|v| self.array(v, &args_path)) {
            for (j, item) in list.iter().enumerate() {
                if let Some(arg) = self.arg(item, &format!("{args_path}[{j}]")) {
                    args.push(arg);
                }
            }
        }
        Some(SyscallRule {
            names: names?,
            action: action?,
            errno_ret,
            args,
        })
    }

    fn arg(&mut self, v: &Value, path: &str) -> Option<Arg> {
        let obj = self.object(v, path, &["index", "value", "valueTwo", "op"])?;
        let index = self.required(obj, path, "index").and_then(|v| self.u32(v, &key(path, "index")));
        let value = self.required(obj, path, "value").and_then(|v| self.u64(v, &key(path, "value")));
        let value_two = match Self::optional(obj, "valueTwo") {
            Some(v) => self.u64(v, &key(path, "valueTwo")),
            None => Some(0),
        };
        let op_path = key(path, "op");
        let op = self.required(obj, path, "op").and_then(|v| self.string(v, &op_path)).and_then(|s| {
            let op = Op::parse(&s);
            if op.is_none() {
                self.problems.push(SeccompError::UnknownOp {
                    path: op_path.clone(),
                    value: s,
                });
            }
            op
        });
        Some(Arg {
            index: index?,
            value: value?,
            value_two: value_two?,
            op: op?,
        })
    }
}
