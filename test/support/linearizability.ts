/**
 * A linearizability checker for recorded histories.
 *
 * The search is Wing & Gong's, with Lowe's "just-in-time" refinement and
 * memoization, as in porcupine (github.com/anishathalye/porcupine): walk the
 * history's calls and returns in time order, try to linearize each pending
 * operation in turn, and backtrack when a response is reached whose operation
 * could not be linearized. A configuration (set of linearized operations,
 * model state) that was reached before cannot lead anywhere new, so it is
 * cached and skipped.
 *
 * The verdict is deterministic: it depends only on the operations and the
 * model. Only the optional `timeoutMs` looks at a clock, and it can only turn a
 * verdict into 'unknown'.
 *
 * An illegal verdict names the earliest response that no linearization can
 * accommodate, with the longest linearization found of what came before it:
 * enough to see what went wrong in a failing simulation seed.
 */

export interface Operation<I, O> {
  /** The sequential client that issued it; used only to explain verdicts. */
  clientId: number;
  input: I;
  output: O;
  /** Invocation time. */
  call: number;
  /**
   * Response time. Infinity when the outcome is unknown (a timeout, a crash):
   * the operation may then take effect at any time after `call`, or never, and
   * its `output` must be one the model accepts in any state.
   */
  return: number;
}

export interface StepResult<S> {
  /** False when `output` cannot be the response to `input` in the state given. */
  ok: boolean;
  state: S;
}

export interface Model<S, I, O> {
  init(): S;
  /** Must not mutate `state`: the search comes back to it when it backtracks. */
  step(state: S, input: I, output: O): StepResult<S>;
  /** Equal keys must mean equal states; it is what the cache compares. */
  stateKey(state: S): string;
  /**
   * Split a history into independent sub-histories (e.g. one per key), each
   * checked on its own from `init()`. Only sound when operations in different
   * parts never affect each other.
   */
  partition?(ops: readonly Operation<I, O>[]): Operation<I, O>[][];
  describeOperation?(input: I, output: O): string;
  describeState?(state: S): string;
}

export interface CheckOptions {
  /** Give up with 'unknown' after this much wall-clock time. */
  timeoutMs?: number;
  /**
   * Give up with 'unknown' after this many search steps in total. Unlike the
   * timeout, the outcome is reproducible: useful in deterministic simulation.
   */
  maxSteps?: number;
}

export interface OkResult {
  verdict: 'ok';
}

export interface IllegalResult<I, O> {
  verdict: 'illegal';
  /** Index of the failing part in `model.partition(ops)`; 0 without a partition function. */
  partition: number;
  /**
   * The operation whose response no linearization can accommodate. Everything
   * that completed strictly before its response is linearizable; adding its
   * response makes the history illegal. It is the earliest such response.
   */
  culprit: Operation<I, O>;
  /**
   * The longest linearization the search found of everything that completed
   * before the culprit's response, in linearization order.
   */
  longestPrefix: Operation<I, O>[];
  /**
   * Operations invoked before the culprit's response but not in
   * `longestPrefix`, the culprit among them, in call order. After the prefix,
   * no legal sequence of them includes the culprit.
   */
  pending: Operation<I, O>[];
  /** Multi-line, human-readable: the culprit, the end of the prefix with states, the pending operations. */
  explanation: string;
}

export interface UnknownResult {
  verdict: 'unknown';
  reason: 'timeout' | 'step-limit';
  /** A part whose check was still running when the budget ran out. */
  partition: number;
}

export type CheckResult<I = unknown, O = unknown> = OkResult | IllegalResult<I, O> | UnknownResult;

/**
 * Check that `ops` is linearizable with respect to `model`, part by part if
 * the model partitions histories. Throws a RangeError on an operation that
 * returns before its call.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  for (const op of ops) validate(op);
  const parts = model.partition ? model.partition(ops) : [ops.slice()];
  const budget: Budget = {
    deadline: options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs,
    stepsLeft: options.maxSteps ?? Infinity,
  };
  // Parts are searched in turns of SLICE_STEPS steps each, round-robin: one
  // illegal part usually fails fast while a legal-looking one can take
  // exponentially long, so this finds a violation about as soon as a
  // parallel search would, yet deterministically. The first part to fail in
  // this schedule is the one reported.
  let active = parts.map((part, index) => ({ index, part, search: searchPart(model, part, budget) }));
  while (active.length > 0) {
    const stillRunning: typeof active = [];
    for (const entry of active) {
      const step = entry.search.next();
      if (!step.done) {
        stillRunning.push(entry);
        if (performance.now() >= budget.deadline) return { verdict: 'unknown', reason: 'timeout', partition: entry.index };
        continue;
      }
      const outcome = step.value;
      if (outcome.kind === 'unknown') return { verdict: 'unknown', reason: outcome.reason, partition: entry.index };
      if (outcome.kind === 'illegal') return illegalResult(model, ops, parts.length, entry.index, entry.part, outcome);
    }
    active = stillRunning;
  }
  return { verdict: 'ok' };
}

/** Like checkOperations, but throws with the explanation unless the verdict is 'ok'. */
export function assertLinearizable<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  options: CheckOptions = {},
): void {
  const result = checkOperations(model, ops, options);
  if (result.verdict === 'illegal') throw new Error(result.explanation);
  if (result.verdict === 'unknown') {
    throw new Error(`linearizability check gave up (${result.reason}) in partition ${result.partition}`);
  }
}

/**
 * Builds a history from a running system: `invoke` when a client sends a
 * request, `complete` when it gets a definite answer, `discard` when it
 * learns the request definitely had no effect. Whatever is still open when
 * `operations` is called gets `unknownOutput` and an infinite return time.
 */
export class HistoryRecorder<I, O> {
  private readonly records: (RecordedOperation<I, O> | undefined)[] = [];

  invoke(clientId: number, input: I, time: number): number {
    this.records.push({ clientId, input, call: time });
    return this.records.length - 1;
  }

  complete(id: number, output: O, time: number): void {
    const record = this.open(id);
    if (!(time >= record.call)) throw new RangeError(`operation ${id} returns at ${time}, before its call at ${record.call}`);
    record.outcome = { output, return: time };
  }

  discard(id: number): void {
    this.open(id);
    this.records[id] = undefined;
  }

  operations(unknownOutput: O): Operation<I, O>[] {
    const result: Operation<I, O>[] = [];
    for (const record of this.records) {
      if (record === undefined) continue;
      const { clientId, input, call, outcome } = record;
      result.push(
        outcome === undefined
          ? { clientId, input, call, output: unknownOutput, return: Infinity }
          : { clientId, input, call, output: outcome.output, return: outcome.return },
      );
    }
    return result;
  }

  private open(id: number): RecordedOperation<I, O> {
    const record = this.records[id];
    if (record === undefined || record.outcome !== undefined) throw new Error(`operation ${id} is not open`);
    return record;
  }
}

interface RecordedOperation<I, O> {
  clientId: number;
  input: I;
  call: number;
  outcome?: { output: O; return: number };
}

/** Describe one operation the way explanations do, e.g. `#12 client 3 [40, 52] read() -> 1`. */
export function formatOperation<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>, index: number): string {
  const ret = op.return === Infinity ? '?' : String(op.return);
  return `#${index} client ${op.clientId} [${op.call}, ${ret}] ${describeOp(model, op)}`;
}

// ---------------------------------------------------------------------------

interface Budget {
  deadline: number;
  stepsLeft: number;
}

type SearchOutcome<S> =
  | { kind: 'ok' }
  | { kind: 'unknown'; reason: 'timeout' | 'step-limit' }
  | { kind: 'illegal'; culprit: number; prefix: number[]; pending: number[]; state: S };

// Search steps a part takes before yielding its turn; the deadline is also
// looked at only between turns, as clock reads are not free.
const SLICE_STEPS = 1024;

function validate(op: Operation<unknown, unknown>): void {
  if (!Number.isFinite(op.call)) throw new RangeError(`operation call time must be finite, got ${op.call}`);
  if (Number.isNaN(op.return) || op.return < op.call) {
    throw new RangeError(`operation returns at ${op.return}, before its call at ${op.call}`);
  }
}

/** murmur3's finalizer: spreads op indices over 32 bits so that XOR-ing them makes a usable set hash. */
function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/**
 * The search for one part, yielding every SLICE_STEPS steps. Indices into the
 * typed arrays below are in range by construction, hence the `!` and `as` in
 * the hot loop.
 *
 * Operations with an unknown outcome (infinite return) get two refinements
 * over the textbook search, both resting on Operation's contract that the
 * model accepts their output in any state, so that one can always be dropped
 * ("it never took effect"):
 * - They are tried only after every operation with a known outcome at the
 *   same point, and the search succeeds as soon as all operations with a known
 *   outcome are linearized. Guessing that a timed-out write happened is the
 *   expensive branch, so it is taken last.
 * - One whose step leaves the state as it was is never linearized: that
 *   branch can do nothing the branch without it cannot.
 */
function* searchPart<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  budget: Budget,
): Generator<void, SearchOutcome<S>, void> {
  const n = ops.length;
  if (n === 0) return { kind: 'ok' };
  const inputs = ops.map((op) => op.input);
  const outputs = ops.map((op) => op.output);

  // Entry code 2*i is operation i's call, 2*i+1 its return. At equal times,
  // calls sort before returns: the two operations are then concurrent, so
  // either order is allowed. Timestamps that tie carry no order we could
  // trust, and treating them as ordered could condemn a correct system; the
  // price is that a violation hidden in a tie goes unseen. A recorder with a
  // coarse clock that wants a client's next call ordered after its previous
  // return must give the call a larger timestamp.
  const timeOf = (code: number): number => {
    const op = ops[code >> 1] as Operation<I, O>;
    return code & 1 ? op.return : op.call;
  };
  const codes = Array.from({ length: 2 * n }, (_, i) => i);
  codes.sort((a, b) => {
    const ta = timeOf(a);
    const tb = timeOf(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    if ((a & 1) !== (b & 1)) return (a & 1) - (b & 1);
    return a - b;
  });

  // Node k is the k-th entry in time order, so comparing nodes compares
  // times. Calls and returns of operations with a known outcome form the main
  // list; calls of the others form the unknown list (their returns, at
  // infinity, are never needed). Both are doubly linked through next/prev,
  // with sentinels so that no link is ever null.
  const HEAD = 2 * n;
  const TAIL = 2 * n + 1;
  const U_HEAD = 2 * n + 2;
  const U_TAIL = 2 * n + 3;
  const next = new Int32Array(2 * n + 4);
  const prev = new Int32Array(2 * n + 4);
  const nodeOp = new Int32Array(2 * n);
  // For a call node, the node of its return, or UNKNOWN_OUTCOME; RETURN marks a return node.
  const RETURN = -1;
  const UNKNOWN_OUTCOME = -2;
  const matchOf = new Int32Array(2 * n);
  const returnNodeOf = new Int32Array(n);
  codes.forEach((code, node) => {
    nodeOp[node] = code >> 1;
    if (code & 1) returnNodeOf[code >> 1] = node;
  });
  let mainLast = HEAD;
  let unknownLast = U_HEAD;
  const append = (last: number, node: number): number => {
    next[last] = node;
    prev[node] = last;
    return node;
  };
  for (let node = 0; node < 2 * n; node++) {
    const op = nodeOp[node]!;
    const known = (ops[op] as Operation<I, O>).return !== Infinity;
    if (returnNodeOf[op] === node) {
      matchOf[node] = RETURN;
      if (known) mainLast = append(mainLast, node);
    } else if (known) {
      matchOf[node] = returnNodeOf[op]!;
      mainLast = append(mainLast, node);
    } else {
      matchOf[node] = UNKNOWN_OUTCOME;
      unknownLast = append(unknownLast, node);
    }
  }
  append(mainLast, TAIL);
  append(unknownLast, U_TAIL);

  // Linearizing removes an operation's nodes from their list; undoing it puts
  // them back. Removed nodes keep their own links, so re-insertion in reverse
  // (stack) order restores the lists exactly.
  const unlink = (node: number): void => {
    next[prev[node]!] = next[node]!;
    prev[next[node]!] = prev[node]!;
  };
  const relink = (node: number): void => {
    next[prev[node]!] = node;
    prev[next[node]!] = node;
  };
  const lift = (call: number): void => {
    unlink(call);
    const ret = matchOf[call]!;
    if (ret >= 0) unlink(ret);
  };
  const unlift = (call: number): void => {
    const ret = matchOf[call]!;
    if (ret >= 0) relink(ret);
    relink(call);
  };

  // The set of linearized operations, with an order-independent hash kept up
  // to date as bits flip, so that a cache probe costs no scan of the set.
  const bits = new Int32Array((n + 31) >>> 5);
  const opHash = new Int32Array(n);
  for (let i = 0; i < n; i++) opHash[i] = mix32(i + 1);
  let setHash = 0;
  const flip = (op: number): void => {
    bits[op >>> 5]! ^= 1 << (op & 31);
    setHash ^= opHash[op]!;
  };

  // States are interned to small integers so that cache entries compare cheaply.
  const stateIds = new Map<string, number>();
  const internState = (state: S): number => {
    const key = model.stateKey(state);
    let id = stateIds.get(key);
    if (id === undefined) {
      id = stateIds.size;
      stateIds.set(key, id);
    }
    return id;
  };
  // Cache entries live in flat arrays: entry e's set is
  // cacheBits[e*words .. (e+1)*words), its state id cacheStates[e], and the
  // next entry in its hash bucket cacheNext[e]. The map holds each bucket's
  // first entry. This keeps the cache free of per-entry allocations.
  const words = bits.length;
  const cacheHeads = new Map<number, number>();
  let cacheBits = new Int32Array(words * 64);
  let cacheStates = new Int32Array(64);
  let cacheNext = new Int32Array(64);
  let cacheSize = 0;
  // Adds the current (set, state) to the cache; false if it was already there.
  const remember = (stateId: number): boolean => {
    // Masked to 30 bits so that V8 keeps the key a small integer.
    const key = (setHash ^ Math.imul(stateId + 1, 0x9e3779b1)) & 0x3fffffff;
    const head = cacheHeads.get(key) ?? -1;
    for (let e = head; e !== -1; e = cacheNext[e]!) {
      if (cacheStates[e] !== stateId) continue;
      let same = true;
      for (let w = 0, base = e * words; w < words; w++) {
        if (cacheBits[base + w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return false;
    }
    if (cacheSize === cacheStates.length) {
      cacheBits = doubled(cacheBits);
      cacheStates = doubled(cacheStates);
      cacheNext = doubled(cacheNext);
    }
    cacheBits.set(bits, cacheSize * words);
    cacheStates[cacheSize] = stateId;
    cacheNext[cacheSize] = head;
    cacheHeads.set(key, cacheSize);
    cacheSize++;
    return true;
  };

  // The stack of linearized operations (by call node), with what to restore
  // on backtracking: the state before, and for an operation taken from the
  // unknown list, the response the search was stuck at when it took it.
  const stackCalls = new Int32Array(n);
  const stackStuckAt = new Int32Array(n);
  const stackStates: S[] = [];
  const stackStateIds = new Int32Array(n);
  let depth = 0;
  let state = model.init();
  let stateId = internState(state);

  // The furthest response any branch got stuck at, and the deepest branch stuck there.
  let bestReturn = -1;
  let bestDepth = -1;
  let best: { culprit: number; prefix: number[]; pending: number[]; state: S } | undefined;

  // The walk: in the main list from its head to the first response (trying
  // calls on the way); then, stuck at that response, along the unknown list
  // while calls precede it; then back up.
  let entry = next[HEAD]!;
  let stuckAt = -1; // >= 0 while walking the unknown list
  let sliceLeft = SLICE_STEPS;
  while (next[HEAD] !== TAIL) {
    if (--budget.stepsLeft < 0) return { kind: 'unknown', reason: 'step-limit' };
    if (--sliceLeft === 0) {
      sliceLeft = SLICE_STEPS;
      yield;
    }

    const match = stuckAt < 0 ? matchOf[entry]! : entry < stuckAt ? UNKNOWN_OUTCOME : RETURN;
    if (match !== RETURN) {
      // A call: try to linearize its operation here.
      const op = nodeOp[entry]!;
      const result = model.step(state, inputs[op] as I, outputs[op] as O);
      if (result.ok) {
        const newStateId = internState(result.state);
        if (match !== UNKNOWN_OUTCOME || newStateId !== stateId) {
          flip(op);
          if (remember(newStateId)) {
            stackCalls[depth] = entry;
            stackStuckAt[depth] = stuckAt;
            stackStates[depth] = state;
            stackStateIds[depth] = stateId;
            depth++;
            state = result.state;
            stateId = newStateId;
            lift(entry);
            entry = next[HEAD]!;
            stuckAt = -1;
            continue;
          }
          flip(op);
        }
      }
      entry = next[entry]!;
      continue;
    }
    if (stuckAt < 0) {
      // Reached a response: on to the calls with unknown outcomes before it.
      stuckAt = entry;
      entry = next[U_HEAD]!;
      continue;
    }

    // Every candidate before the response at stuckAt failed: this branch is dead.
    if (stuckAt > bestReturn || (stuckAt === bestReturn && depth > bestDepth)) {
      bestReturn = stuckAt;
      bestDepth = depth;
      const pending: number[] = [];
      for (let node = next[HEAD]!; node !== stuckAt; node = next[node]!) {
        if (matchOf[node] !== RETURN) pending.push(node);
      }
      for (let node = next[U_HEAD]!; node < stuckAt; node = next[node]!) pending.push(node);
      pending.sort((a, b) => a - b);
      const prefix = Array.from(stackCalls.subarray(0, depth), (call) => nodeOp[call]!);
      best = { culprit: nodeOp[stuckAt]!, prefix, pending: pending.map((node) => nodeOp[node]!), state };
    }
    if (depth === 0) {
      // Unreachable without a recorded branch: the first dead end is recorded above.
      if (best === undefined) throw new Error('linearizability search failed without a dead end');
      return { kind: 'illegal', ...best };
    }
    depth--;
    const call = stackCalls[depth]!;
    state = stackStates[depth] as S;
    stateId = stackStateIds[depth]!;
    stuckAt = stackStuckAt[depth]!;
    flip(nodeOp[call]!);
    unlift(call);
    entry = next[call]!;
  }
  return { kind: 'ok' };
}

function doubled(array: Int32Array): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  if (model.describeOperation) return model.describeOperation(op.input, op.output);
  return `${JSON.stringify(op.input)} -> ${JSON.stringify(op.output)}`;
}

// Long states (an append-only string, say) are cut to their end, where the latest changes are.
const STATE_CHARS = 120;

function describeState<S, I, O>(model: Model<S, I, O>, state: S): string {
  const text = model.describeState ? model.describeState(state) : model.stateKey(state);
  return text.length <= STATE_CHARS ? text : `…${text.slice(-STATE_CHARS)} (${text.length} chars)`;
}

// How much of the prefix and of the pending set an explanation shows.
const PREFIX_LINES = 8;
const PENDING_LINES = 12;

function illegalResult<S, I, O>(
  model: Model<S, I, O>,
  allOps: readonly Operation<I, O>[],
  partCount: number,
  partIndex: number,
  part: readonly Operation<I, O>[],
  outcome: Extract<SearchOutcome<S>, { kind: 'illegal' }>,
): IllegalResult<I, O> {
  // Name operations by their index in the caller's array, which is what the
  // caller can look up; fall back to the index in the part if a partition
  // function copied them.
  const indexInAll = new Map<Operation<I, O>, number>();
  allOps.forEach((op, i) => indexInAll.set(op, i));
  const opAt = (i: number): Operation<I, O> => part[i] as Operation<I, O>;
  const indexOf = (i: number): number => indexInAll.get(opAt(i)) ?? i;
  const line = (i: number): string => formatOperation(model, opAt(i), indexOf(i));

  const culprit = opAt(outcome.culprit);
  const lines: string[] = [];
  const where = partCount > 1 ? ` (partition ${partIndex} of ${partCount}, ${part.length} operations)` : '';
  lines.push(`Not linearizable${where}. No linearization includes the response of`);
  lines.push(`  ${line(outcome.culprit)}`);

  // Replay the prefix to show the state after each of its last operations.
  const prefix = outcome.prefix;
  lines.push(`Everything that completed earlier linearizes; the longest such order found has ${prefix.length} operations.`);
  let state = model.init();
  const shownFrom = Math.max(0, prefix.length - PREFIX_LINES);
  if (shownFrom > 0) lines.push(`  ... ${shownFrom} earlier operations`);
  prefix.forEach((i, k) => {
    const op = opAt(i);
    state = model.step(state, op.input, op.output).state;
    if (k >= shownFrom) lines.push(`  ${line(i)}   => ${describeState(model, state)}`);
  });
  lines.push(
    `From its final state ${describeState(model, outcome.state)}, no legal continuation includes #${indexOf(outcome.culprit)}. The operations that could come next:`,
  );
  for (const i of outcome.pending.slice(0, PENDING_LINES)) lines.push(`  ${line(i)}`);
  if (outcome.pending.length > PENDING_LINES) lines.push(`  ... and ${outcome.pending.length - PENDING_LINES} more`);

  return {
    verdict: 'illegal',
    partition: partIndex,
    culprit,
    longestPrefix: prefix.map(opAt),
    pending: outcome.pending.map(opAt),
    explanation: lines.join('\n'),
  };
}
