//! Profile → BPF, with seccompiler generating every comparison.
//!
//! seccompiler compiles a filter with one on-match and one default action. An
//! OCI profile has an action per rule, so the rules are cut, in evaluation
//! order (module docs), into runs that share an action; each run is compiled by
//! seccompiler with a sentinel as its default action, and the runs are chained:
//! each sentinel return becomes a jump to the next run, the last one's to the
//! profile's default action. seccompiler's architecture check is kept once, at
//! the top. Jumps stay forward and relative, so the chained program is valid
//! BPF exactly when each run is.

use std::collections::{BTreeMap, HashSet};

use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

use super::profile::{Action, Op, Profile};
use super::{Arch, Bpf, Instruction, Problems, SeccompError};

/// What a run returns when no rule of it matched: an errno no real action can
/// carry (errnos end at 4095), replaced by a jump before the program is used.
const SENTINEL: SeccompAction = SeccompAction::Errno(0xffff);

const BPF_RET_K: u16 = 0x06;
const BPF_JMP_JA: u16 = 0x05;
/// seccompiler's prologue: load arch, compare, kill on mismatch.
const ARCH_CHECK_LEN: usize = 3;

struct Run {
    action: SeccompAction,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    /// Calls matched without conditions in this run: further conditions add nothing.
    unconditional: HashSet<i64>,
}

/// Compiles a profile for `arch`. Names of calls that `arch` does not have are
/// skipped (nothing can make them); every other problem is an error.
pub fn compile(profile: &Profile, arch: Arch) -> Result<Bpf, Problems> {
    profile.validate()?;
    let default = resolve(profile.default_action, profile.default_errno_ret)?;

    // Evaluation order: rules with argument conditions first, then the rest,
    // each group in profile order.
    let ordered = profile
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty())
        .chain(profile.syscalls.iter().filter(|r| r.args.is_empty()));
    let mut runs: Vec<Run> = Vec::new();
    for rule in ordered {
        let action = resolve(rule.action, rule.errno_ret)?;
        let conditions = rule
            .args
            .iter()
            .map(|a| {
                let (op, value) = match a.op {
                    Op::Ne => (SeccompCmpOp::Ne, a.value),
                    Op::Lt => (SeccompCmpOp::Lt, a.value),
                    Op::Le => (SeccompCmpOp::Le, a.value),
                    Op::Eq => (SeccompCmpOp::Eq, a.value),
                    Op::Ge => (SeccompCmpOp::Ge, a.value),
                    Op::Gt => (SeccompCmpOp::Gt, a.value),
                    Op::MaskedEq => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
                };
                // Indexes were checked by validate(); a failure here is a bug.
                SeccompCondition::new(a.index as u8, SeccompCmpArgLen::Qword, op, value).map_err(backend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if runs.last().is_none_or(|r| r.action != action) {
            runs.push(Run {
                action: action.clone(),
                rules: BTreeMap::new(),
                unconditional: HashSet::new(),
            });
        }
        let run = runs.last_mut().expect("pushed above");
        for name in &rule.names {
            let Some(nr) = arch.syscall(name) else {
                continue;
            };
            let nr = i64::from(nr);
            if conditions.is_empty() {
                run.rules.insert(nr, Vec::new());
                run.unconditional.insert(nr);
            } else if !run.unconditional.contains(&nr) {
                run.rules
                    .entry(nr)
                    .or_default()
                    .push(SeccompRule::new(conditions.clone()).map_err(backend)?);
            }
        }
    }

    // A filter without rules gives the prologue and the final return.
    let bare = seccompile(BTreeMap::new(), default.clone(), SENTINEL, arch)?;
    let (prologue, last) = bare.split_at(ARCH_CHECK_LEN);
    let mut prog: Vec<Instruction> = prologue.to_vec();
    let mut spans = Vec::new();
    for run in runs.into_iter().filter(|r| !r.rules.is_empty()) {
        if run.action == SENTINEL {
            return Err(backend("a rule's action collides with the compiler's sentinel").into());
        }
        let body = seccompile(run.rules, SENTINEL, run.action, arch)?;
        if body[..ARCH_CHECK_LEN] != *prologue {
            return Err(backend("seccompiler changed its architecture check").into());
        }
        let start = prog.len();
        prog.extend_from_slice(&body[ARCH_CHECK_LEN..]);
        spans.push(start..prog.len());
    }
    let end = prog.len();
    prog.extend_from_slice(last);
    let sentinel = Instruction {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: u32::from(SENTINEL),
    };
    for (i, span) in spans.iter().enumerate() {
        let next = spans.get(i + 1).map_or(end, |s| s.start);
        for pc in span.clone() {
            if prog[pc] == sentinel {
                prog[pc] = Instruction {
                    code: BPF_JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: (next - pc - 1) as u32,
                };
            }
        }
    }
    if prog.contains(&sentinel) {
        return Err(backend("a sentinel return was left in the program").into());
    }
    Ok(Bpf::from_instructions(&prog)?)
}

fn resolve(action: Action, errno_ret: Option<u32>) -> Result<SeccompAction, SeccompError> {
    // validate() refused NOTIFY already.
    action
        .resolve(errno_ret)
        .ok_or_else(|| backend("SCMP_ACT_NOTIFY reached the compiler"))
}

fn seccompile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: Arch,
) -> Result<Vec<Instruction>, SeccompError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, arch.target()).map_err(backend)?;
    let prog: BpfProgram = filter.try_into().map_err(|e| match e {
        seccompiler::BackendError::FilterTooLarge(len) => SeccompError::TooLarge { len },
        e => backend(e),
    })?;
    Ok(prog
        .into_iter()
        .map(|i| Instruction {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

fn backend(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Backend(e.to_string())
}
