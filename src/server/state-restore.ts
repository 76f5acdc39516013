/**
 * Rebuilding the state machine from a snapshot file, checked against the
 * digest the file was written with. Two ways, same result:
 *
 * - restoreInWorker: at start-up. A worker thread reads and checks the rows
 *   while this thread builds the keyspace from the batches it posts, so the
 *   two halves of the work run on two cores.
 * - restoreHere: a snapshot installed from the leader inside the Ready loop,
 *   which must not yield to the event loop halfway.
 */
import type { StateMachineConfig } from '../state/index.ts';
import { StateMachine } from '../state/index.ts';
import type { NodeStorage, ReadPriority, StoredSnapshot } from '../storage/index.ts';
import { forEachPackedKeyRow } from '../storage/index.ts';

export async function restoreInWorker(
  storage: NodeStorage,
  file: StoredSnapshot,
  config: Partial<StateMachineConfig>,
  priority: ReadPriority | null = null,
): Promise<StateMachine> {
  // Opening checks the header here, at once; the worker opens the file again for the rows.
  const reader = storage.openSnapshot(file);
  const expectedDigest = reader.info.stateDigest;
  reader.close();
  const restore = StateMachine.restore({ lastAppliedIndex: file.index, logTimeMs: file.logTimeMs }, config);
  const sessions = await storage.readSnapshotRows(file, (batch) => forEachPackedKeyRow(batch, restore.key), priority);
  for (const row of sessions) restore.session(row);
  return checked(restore.finish(), file, expectedDigest);
}

export function restoreHere(storage: NodeStorage, file: StoredSnapshot, config: Partial<StateMachineConfig>): StateMachine {
  const reader = storage.openSnapshot(file);
  try {
    const restore = StateMachine.restore({ lastAppliedIndex: file.index, logTimeMs: file.logTimeMs }, config);
    for (const batch of reader.keyBatches()) forEachPackedKeyRow(batch, restore.key);
    for (const row of reader.sessions()) restore.session(row);
    return checked(restore.finish(), file, reader.info.stateDigest);
  } finally {
    reader.close();
  }
}

function checked(state: StateMachine, file: StoredSnapshot, expectedDigest: string | null): StateMachine {
  if (expectedDigest !== null && expectedDigest !== state.digest()) {
    throw new Error(`snapshot ${file.path} restored to digest ${state.digest()}, but it was written with ${expectedDigest}`);
  }
  state.trackChanges(true);
  return state;
}
