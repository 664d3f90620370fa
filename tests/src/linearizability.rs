//! A linearizability checker for histories that clients of real server
//! processes record, against a register model in which every key is a znode.
//!
//! The search is Wing & Gong's, as improved by Lowe ("Testing for
//! linearizability", 2017) and used by Knossos and Porcupine: the operations
//! of one key sit in a doubly linked list of call and return entries in
//! real-time order; the search linearizes any operation whose call comes
//! before the first remaining return, backtracks when it reaches a return,
//! and remembers every (placed set, register state) pair it has explored
//! so that no configuration is expanded twice. Keys are independent
//! registers, so each key's sub-history is checked on its own (Herlihy &
//! Wing's locality: a history is linearizable iff every object's sub-history
//! is), which keeps the exponential part of the search small.
//!
//! Recording rules, for whoever writes a recorder:
//! - All times come from one monotonic clock, in nanoseconds: take the
//!   invoke time before the request is sent and the complete time after the
//!   reply is read. Equal times count as overlapping, so a coarse clock can
//!   only make the checker more lenient, never report a false violation.
//! - Every key starts absent; record the creates that set a test up.
//! - [`Outcome::Ok`] is any reply from the server, including `BadVersion`,
//!   `NodeExists` and `NoNode`: the model must reproduce those.
//!   [`Outcome::Fail`] is for replies that say the operation definitely did
//!   not happen (not leader, no quorum); such operations are ignored.
//!   [`Outcome::Unknown`] is for connection loss, timeouts and operations
//!   that never completed: the operation may have taken effect at any time
//!   after its invocation, or never.
//! - [`Op::Write`] is "set, creating the node if it is absent". A plain
//!   `setData(path, -1)` that replied `NoNode` changed nothing and observed
//!   absence: record it as a [`Op::Read`] that returned `None`.
//!
//! ```
//! use std::time::Duration;
//! use zab_tests::linearizability::{check, Budget, History, Op, Outcome, Reply, Verdict};
//!
//! let mut history = History::new();
//! let w = history.push_invoke(1, "/a", Op::Write(7), 100);
//! history.complete(w, 200, Outcome::Ok(Reply::Ok));
//! let r = history.push_invoke(2, "/a", Op::Read, 300);
//! history.complete(r, 400, Outcome::Ok(Reply::Read(Some(7))));
//! let verdict = check(&history, Budget::time(Duration::from_secs(10)));
//! assert_eq!(verdict, Verdict::Linearizable);
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

/// A znode's data. Tests write a fresh value each time, which keeps the
/// search small, but the checker is correct without that.
pub type Value = u64;

/// A znode's data version, as ZooKeeper counts it: 0 after create, +1 per set.
pub type Version = i32;

/// One key's register: absent, or a value at a version.
pub type State = Option<(Value, Version)>;

/// An operation on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `getData`: replies [`Reply::Read`].
    Read,
    /// `setData(-1)`, or `create` when the node is absent: always replies
    /// [`Reply::Ok`].
    Write(Value),
    /// `setData(expected_version)`: replies `Ok`, `BadVersion`, or `NoNode`
    /// when the node is absent. As in ZooKeeper, version -1 matches any.
    Cas {
        expected_version: Version,
        new: Value,
    },
    /// `create`: replies `Ok` or `NodeExists`.
    Create(Value),
    /// `delete(-1)`: replies `Ok` or `NoNode`.
    Delete,
}

/// What the server replied to an operation that it carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The data read, `None` if the node was absent.
    Read(Option<Value>),
    Ok,
    BadVersion,
    NodeExists,
    NoNode,
}

/// How an operation ended, from the client's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server replied; the model must reproduce the reply.
    Ok(Reply),
    /// The operation definitely did not happen (the error says why).
    Fail(String),
    /// It may or may not have happened, at any time after its invocation.
    Unknown,
}

/// One operation as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub client: u64,
    pub key: String,
    pub op: Op,
    /// Nanoseconds on the recorders' shared monotonic clock.
    pub invoke_time: u64,
    /// Nanoseconds; `None` while the operation is in flight. Ignored for
    /// [`Outcome::Unknown`], whose completion is taken to be +infinity.
    pub complete_time: Option<u64>,
    pub outcome: Outcome,
    /// The zxid the server reported for it (a write's `mzxid`, a read's
    /// data zxid), when known. Recorded for diagnosis; the check ignores it.
    pub zxid: Option<u64>,
}

/// A recorded history: events in any order, indexed by when they were pushed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

/// How much work the checker may do before it gives up with
/// [`Verdict::Unknown`]. Both limits apply to the whole history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Search steps (one per list entry visited), across all keys.
    pub steps_max: u64,
    /// Wall-clock time; `None` for no limit. Runs stopped by time are not
    /// reproducible, so tests should prefer `steps_max`.
    pub time_max: Option<Duration>,
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// `key`'s sub-history has no linearization.
    NotLinearizable {
        key: String,
        explanation: Explanation,
    },
    /// The budget ran out before the search decided; never a pass.
    Unknown {
        reason: String,
    },
}

/// Why a key's sub-history is not linearizable: the longest linearizable
/// prefix the search found and the operation that could not follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// History indices of the prefix, in linearization order.
    pub prefix: Vec<usize>,
    /// The register after the prefix.
    pub state: State,
    /// History index of the operation that could not be placed: the one with
    /// the earliest completion among those left, which must come next.
    pub stuck: usize,
    /// What the model replies to `stuck` after the prefix (the history
    /// recorded something else).
    pub model_reply: Reply,
    /// All of the above for a human, with the events spelled out.
    pub text: String,
}

/// Checks `history` against the register model, one key at a time, within
/// `budget`. Returns [`Verdict::Unknown`] when the budget runs out, never
/// [`Verdict::Linearizable`].
pub fn check(history: &History, budget: Budget) -> Verdict {
    let mut meter = Meter::new(budget);
    let keys = history.keys();
    for (checked, (key, ops)) in keys.iter().enumerate() {
        match Search::new(history, ops).run(&mut meter) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation(explanation) => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    explanation,
                };
            }
            KeyVerdict::OutOfBudget => {
                return Verdict::Unknown {
                    reason: format!(
                        "budget exhausted after {} steps while checking key {key:?} \
                         ({} operations); {checked} of {} keys were linearizable, \
                         the rest were not checked",
                        meter.steps_used,
                        ops.len(),
                        keys.len(),
                    ),
                };
            }
        }
    }
    Verdict::Linearizable
}

impl Op {
    /// The model: the register after this operation on `state`, and the
    /// reply the server must give.
    pub fn apply(self, state: State) -> (State, Reply) {
        match (self, state) {
            (Op::Read, s) => (s, Reply::Read(s.map(|(value, _)| value))),
            (Op::Write(new), None) | (Op::Create(new), None) => (Some((new, 0)), Reply::Ok),
            (Op::Write(new), Some((_, version))) => {
                (Some((new, version.wrapping_add(1))), Reply::Ok)
            }
            (Op::Cas { .. }, None) => (None, Reply::NoNode),
            (
                Op::Cas {
                    expected_version,
                    new,
                },
                Some((_, version)),
            ) if expected_version == -1 || expected_version == version => {
                (Some((new, version.wrapping_add(1))), Reply::Ok)
            }
            (Op::Cas { .. }, s @ Some(_)) => (s, Reply::BadVersion),
            (Op::Create(_), s @ Some(_)) => (s, Reply::NodeExists),
            (Op::Delete, Some(_)) => (None, Reply::Ok),
            (Op::Delete, None) => (None, Reply::NoNode),
        }
    }
}

impl Reply {
    /// Whether an operation that got this reply left the register as it was.
    pub fn changes_nothing(self) -> bool {
        match self {
            Reply::Read(_) | Reply::BadVersion | Reply::NodeExists | Reply::NoNode => true,
            Reply::Ok => false,
        }
    }
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Records that `client` invoked `op` on `key` at `time_ns`; returns the
    /// index to pass to [`History::complete`]. Until then the operation
    /// counts as [`Outcome::Unknown`].
    pub fn push_invoke(
        &mut self,
        client: u64,
        key: impl Into<String>,
        op: Op,
        time_ns: u64,
    ) -> usize {
        self.push(Event {
            client,
            key: key.into(),
            op,
            invoke_time: time_ns,
            complete_time: None,
            outcome: Outcome::Unknown,
            zxid: None,
        })
    }

    /// Records the zxid the server reported for the operation at `idx`.
    pub fn set_zxid(&mut self, idx: usize, zxid: u64) {
        self.events[idx].zxid = Some(zxid);
    }

    /// Records how the operation at `idx` ended, at `time_ns`.
    ///
    /// # Panics
    /// If `idx` was not returned by `push_invoke`, was already completed, or
    /// `time_ns` is before its invocation: all recorder bugs.
    pub fn complete(&mut self, idx: usize, time_ns: u64, outcome: Outcome) {
        let event = &mut self.events[idx];
        assert!(
            event.complete_time.is_none(),
            "event #{idx} completed twice"
        );
        assert!(
            time_ns >= event.invoke_time,
            "event #{idx} completes at {time_ns} ns, before its invocation at {} ns",
            event.invoke_time
        );
        event.complete_time = Some(time_ns);
        event.outcome = outcome;
    }

    /// Appends a whole event (for histories built by hand or loaded from a
    /// file); returns its index.
    ///
    /// # Panics
    /// If the event has a definite outcome but no completion time, or
    /// completes before it is invoked.
    pub fn push(&mut self, event: Event) -> usize {
        let idx = self.events.len();
        assert!(
            event.complete_time.is_some() || event.outcome == Outcome::Unknown,
            "event #{idx} has outcome {} but no completion time",
            event.outcome
        );
        assert!(
            event.complete_time.is_none_or(|t| t >= event.invoke_time),
            "event #{idx} completes before it is invoked"
        );
        self.events.push(event);
        idx
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The operations the search must consider, grouped by key, smallest key
    /// first so that a cheap violation is found before an expensive search.
    /// Failed operations never happened; unknown reads cannot have changed
    /// anything and constrain nothing, so both are left out.
    fn keys(&self) -> Vec<(&str, Vec<usize>)> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (idx, event) in self.events.iter().enumerate() {
            let relevant = match (&event.outcome, event.op) {
                (Outcome::Fail(_), _) | (Outcome::Unknown, Op::Read) => false,
                (Outcome::Ok(_), _) | (Outcome::Unknown, _) => true,
            };
            if relevant {
                by_key.entry(event.key.as_str()).or_default().push(idx);
            }
        }
        let mut keys: Vec<_> = by_key.into_iter().collect();
        keys.sort_by_key(|(key, ops)| (ops.len(), *key));
        keys
    }
}

impl Budget {
    /// At most `steps_max` search steps, however long they take.
    pub const fn steps(steps_max: u64) -> Budget {
        Budget {
            steps_max,
            time_max: None,
        }
    }

    /// At most `time_max` of wall-clock time.
    pub const fn time(time_max: Duration) -> Budget {
        Budget {
            steps_max: u64::MAX,
            time_max: Some(time_max),
        }
    }
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read => write!(f, "read"),
            Op::Write(v) => write!(f, "write({v})"),
            Op::Cas {
                expected_version,
                new,
            } => write!(f, "cas(version {expected_version}, {new})"),
            Op::Create(v) => write!(f, "create({v})"),
            Op::Delete => write!(f, "delete"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Read(Some(v)) => write!(f, "{v}"),
            Reply::Read(None) => write!(f, "absent"),
            Reply::Ok => write!(f, "ok"),
            Reply::BadVersion => write!(f, "BadVersion"),
            Reply::NodeExists => write!(f, "NodeExists"),
            Reply::NoNode => write!(f, "NoNode"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(reply) => write!(f, "{reply}"),
            Outcome::Fail(error) => write!(f, "failed ({error})"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable { explanation, .. } => {
                write!(f, "not linearizable: {}", explanation.text)
            }
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// One event in the form the explanations print.
fn describe(history: &History, idx: usize) -> String {
    let e = &history.events[idx];
    let complete = match (&e.outcome, e.complete_time) {
        (Outcome::Unknown, _) | (_, None) => "inf".to_string(),
        (_, Some(t)) => t.to_string(),
    };
    format!(
        "#{idx} client {}: {} -> {} [{}, {complete}] ns",
        e.client, e.op, e.outcome, e.invoke_time
    )
}

fn describe_state(state: State) -> String {
    match state {
        None => "absent".to_string(),
        Some((value, version)) => format!("{value} at version {version}"),
    }
}

/// Counts steps against the budget; reads the clock only every
/// `CLOCK_EVERY_STEPS` steps, because a clock read costs more than a step.
#[derive(Debug)]
struct Meter {
    steps_max: u64,
    steps_used: u64,
    deadline: Option<Instant>,
}

const CLOCK_EVERY_STEPS: u64 = 1024;

impl Meter {
    fn new(budget: Budget) -> Meter {
        Meter {
            steps_max: budget.steps_max,
            steps_used: 0,
            // A deadline too far away to represent is no deadline.
            deadline: budget.time_max.and_then(|d| Instant::now().checked_add(d)),
        }
    }

    /// Spends one step; false once the budget is gone.
    fn tick(&mut self) -> bool {
        if self.steps_used >= self.steps_max {
            return false;
        }
        self.steps_used += 1;
        if self.steps_used % CLOCK_EVERY_STEPS == 0
            && self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            self.steps_max = self.steps_used;
        }
        true
    }
}

enum KeyVerdict {
    Linearizable,
    Violation(Explanation),
    OutOfBudget,
}

/// A node of the search's linked list. Node 0 is the head sentinel and the
/// last node the tail sentinel, so unlinking never needs a special case.
#[derive(Clone, Copy, Debug)]
enum Entry {
    Sentinel,
    /// `rank` is the call's position among all calls of the key.
    Call {
        op: usize,
        ret: usize,
        rank: usize,
    },
    Return {
        op: usize,
    },
}

/// One operation of the key being checked.
#[derive(Debug)]
struct KeyOp {
    /// Index in the history.
    event: usize,
    op: Op,
    /// `None` when the outcome is unknown: any reply is accepted.
    reply: Option<Reply>,
}

/// The WGL search over one key's sub-history.
#[derive(Debug)]
struct Search<'h> {
    history: &'h History,
    ops: Vec<KeyOp>,
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

const HEAD: usize = 0;

/// Where the search stands: which operations are placed, in what order, and
/// the register they leave.
#[derive(Debug)]
struct Config {
    state: State,
    stack: Vec<Placed>,
    /// The highest call rank placed, if any.
    high: Option<usize>,
    definite_left: usize,
}

/// An operation placed in the linearization.
#[derive(Debug)]
struct Placed {
    call: usize,
    before: State,
    high_before: Option<usize>,
    /// Placed greedily: if what follows fails, so does what came before.
    forced: bool,
}

impl<'h> Search<'h> {
    fn new(history: &'h History, event_idxs: &[usize]) -> Search<'h> {
        let ops: Vec<KeyOp> = event_idxs
            .iter()
            .map(|&event| KeyOp {
                event,
                op: history.events[event].op,
                reply: match history.events[event].outcome {
                    Outcome::Ok(reply) => Some(reply),
                    Outcome::Fail(_) | Outcome::Unknown => None,
                },
            })
            .collect();
        // Real-time order of calls and returns. Calls sort before returns at
        // the same time (equal times overlap); unknown returns go last, at
        // +infinity.
        let mut marks: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            let e = &history.events[op.event];
            marks.push((false, e.invoke_time, false, i));
            match (op.reply, e.complete_time) {
                (Some(_), Some(t)) => marks.push((false, t, true, i)),
                _ => marks.push((true, 0, true, i)),
            }
        }
        marks.sort_unstable();
        let tail = marks.len() + 1;
        let mut entries = vec![Entry::Sentinel; tail + 1];
        let mut ret_node = vec![0; ops.len()];
        for (n, &(_, _, is_return, op)) in marks.iter().enumerate().rev() {
            let node = n + 1;
            entries[node] = if is_return {
                ret_node[op] = node;
                Entry::Return { op }
            } else {
                Entry::Call {
                    op,
                    ret: ret_node[op],
                    rank: 0,
                }
            };
        }
        let calls = entries.iter_mut().filter_map(|e| match e {
            Entry::Call { rank, .. } => Some(rank),
            _ => None,
        });
        for (n, rank) in calls.enumerate() {
            *rank = n;
        }
        Search {
            history,
            ops,
            entries,
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|n| n.saturating_sub(1)).collect(),
        }
    }

    /// Runs the search until it finds a linearization of every definite
    /// operation, exhausts the possibilities, or exhausts the budget.
    ///
    /// Two prunings on top of WGL, both sound:
    /// - An operation whose recorded reply says it changed nothing (a read,
    ///   `BadVersion`, `NodeExists`, `NoNode`) is placed greedily as soon as
    ///   it can be, and if everything after it fails, so does the
    ///   configuration it was placed from. Any linearization from there that
    ///   places it later stays valid with it moved to the front: it changes
    ///   no state, and no remaining operation must precede it, since none has
    ///   returned before its call. Without this, concurrent reads multiply
    ///   the configurations by every subset of them.
    /// - An unknown operation is never placed where it would change nothing:
    ///   that only removes it from later use.
    fn run(mut self, meter: &mut Meter) -> KeyVerdict {
        let mut at = Config {
            state: None,
            stack: Vec::new(),
            high: None,
            // Unknown operations need never be placed: linearized after
            // everything else, their effect is observed by no one.
            definite_left: self.ops.iter().filter(|o| o.reply.is_some()).count(),
        };
        let mut cache: HashSet<(Vec<usize>, State)> = HashSet::new();
        let mut best: (Vec<usize>, State) = (Vec::new(), None);
        let mut node = self.next[HEAD];
        loop {
            if at.definite_left == 0 {
                return KeyVerdict::Linearizable;
            }
            if !meter.tick() {
                return KeyVerdict::OutOfBudget;
            }
            match self.entries[node] {
                Entry::Call { op, ret, rank } => {
                    let o = &self.ops[op];
                    let (after, reply) = o.op.apply(at.state);
                    let fits = match o.reply {
                        Some(recorded) => recorded == reply,
                        None => after != at.state,
                    };
                    let forced = o.reply.is_some_and(Reply::changes_nothing);
                    if fits {
                        let high = at.high.max(Some(rank));
                        if cache.insert((self.placed_set(high, node), after)) {
                            at.stack.push(Placed {
                                call: node,
                                before: at.state,
                                high_before: at.high,
                                forced,
                            });
                            at.state = after;
                            at.high = high;
                            at.definite_left -= usize::from(o.reply.is_some());
                            self.lift(node, ret);
                            node = self.next[HEAD];
                            continue;
                        }
                    }
                    if !(fits && forced) {
                        node = self.next[node];
                        continue;
                    }
                    // The greedy placement was explored before and failed,
                    // so this configuration fails too.
                }
                // The earliest remaining return cannot be passed.
                Entry::Return { .. } => {}
                Entry::Sentinel => {
                    unreachable!("a definite operation's return precedes the tail")
                }
            }
            if at.stack.len() > best.0.len() {
                best = (
                    at.stack.iter().map(|p| self.op_of(p.call)).collect(),
                    at.state,
                );
            }
            match self.backtrack(&mut at) {
                Some(call) => node = self.next[call],
                None => return KeyVerdict::Violation(self.explain(&best.0, best.1)),
            }
        }
    }

    /// Undoes placements up to and including the latest one that was a free
    /// choice; returns its call node, from which the next candidate is
    /// tried, or `None` if there is none left.
    fn backtrack(&mut self, at: &mut Config) -> Option<usize> {
        loop {
            let placed = at.stack.pop()?;
            let Entry::Call { op, ret, .. } = self.entries[placed.call] else {
                unreachable!("only calls are placed");
            };
            at.state = placed.before;
            at.high = placed.high_before;
            at.definite_left += usize::from(self.ops[op].reply.is_some());
            self.unlift(placed.call, ret);
            if !placed.forced {
                return Some(placed.call);
            }
        }
    }

    /// The set of placed operations once the call `adding` is placed too,
    /// where `high` is then the highest placed call rank: every operation
    /// called after it is unplaced, and the ones called before it are placed
    /// but for a few holes (operations overlapping recent ones, and unknown
    /// ones never placed). So `[high, holes...]` names the set exactly, in
    /// space that grows with concurrency rather than history length. The
    /// holes are the listed calls ranked below `high`, and they head the
    /// list, since each placed call came before every return still listed.
    fn placed_set(&self, high: Option<usize>, adding: usize) -> Vec<usize> {
        let high = high.expect("at least the call being added is placed");
        let mut set = vec![high];
        let mut node = self.next[HEAD];
        loop {
            match self.entries[node] {
                Entry::Call { rank, .. } if rank > high => break,
                Entry::Call { rank, .. } if node != adding => set.push(rank),
                Entry::Sentinel => break,
                Entry::Call { .. } | Entry::Return { .. } => {}
            }
            node = self.next[node];
        }
        set
    }

    fn op_of(&self, node: usize) -> usize {
        match self.entries[node] {
            Entry::Call { op, .. } | Entry::Return { op } => op,
            Entry::Sentinel => unreachable!("sentinels belong to no operation"),
        }
    }

    /// Takes an operation's call and return out of the list.
    fn lift(&mut self, call: usize, ret: usize) {
        for node in [call, ret] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = n;
            self.prev[n] = p;
        }
    }

    /// Puts them back, in the reverse order (dancing links).
    fn unlift(&mut self, call: usize, ret: usize) {
        for node in [ret, call] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = node;
            self.prev[n] = node;
        }
    }

    /// Builds the explanation from the deepest configuration reached, where
    /// the operation with the earliest remaining return had to come next and
    /// the model could not produce its reply.
    fn explain(&self, prefix: &[usize], state: State) -> Explanation {
        let mut placed = vec![false; self.ops.len()];
        for &op in prefix {
            placed[op] = true;
        }
        let stuck = self
            .entries
            .iter()
            .find_map(|entry| match *entry {
                Entry::Return { op } if !placed[op] && self.ops[op].reply.is_some() => Some(op),
                _ => None,
            })
            .expect("a failed search left a definite operation unplaced");
        let (_, model_reply) = self.ops[stuck].op.apply(state);
        // Every call before the first return was tried at the deepest
        // configuration, and placing any would have gone deeper.
        debug_assert_ne!(Some(model_reply), self.ops[stuck].reply);
        let prefix: Vec<usize> = prefix.iter().map(|&op| self.ops[op].event).collect();
        let stuck = self.ops[stuck].event;
        Explanation {
            text: self.explanation_text(&prefix, state, stuck, model_reply),
            prefix,
            state,
            stuck,
            model_reply,
        }
    }

    fn explanation_text(
        &self,
        prefix: &[usize],
        state: State,
        stuck: usize,
        model: Reply,
    ) -> String {
        const SHOWN_MAX: usize = 20;
        let key = &self.history.events[stuck].key;
        let mut text = format!(
            "key {key:?}: no linearization explains {}; after the longest linearizable \
             prefix found ({} of {} operations) the register holds {}, where the model \
             replies {model}",
            describe(self.history, stuck),
            prefix.len(),
            self.ops.len(),
            describe_state(state),
        );
        let skipped = prefix.len().saturating_sub(SHOWN_MAX);
        text.push_str("\nprefix:");
        if skipped > 0 {
            text.push_str(&format!("\n  ... {skipped} earlier operations"));
        }
        for &idx in &prefix[skipped..] {
            text.push_str(&format!("\n  {}", describe(self.history, idx)));
        }
        text
    }
}

#[cfg(test)]
mod tests;
