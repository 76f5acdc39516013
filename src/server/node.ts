/**
 * The composition root: builds a node from its Config and wires storage,
 * the Raft loop, the peer transport, the client services and the HTTP port.
 * Nothing else in the server knows how the pieces are put together.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { bootstrapState } from '../raft/index.ts';
import type { NodeId } from '../raft/index.ts';
import { NodeStorage } from '../storage/index.ts';
import { longLivedCopy } from '../state/index.ts';
import { PeerTransport } from '../transport/index.ts';
import type { Config } from '../config/config.ts';
import { AddressBook, decodeMemberContext } from './address-book.ts';
import { Authenticator } from './auth.ts';
import { serveClientPort } from './client-port.ts';
import { ClusterService } from './cluster-service.ts';
import { FaultInjection } from './fault-injection.ts';
import { Forwarder } from './forwarder.ts';
import { ForwardClient } from './forward-client.ts';
import { ForwardReceiver } from './forward-receiver.ts';
import { HealthService } from './health-service.ts';
import { startHttpServer } from './http-server.ts';
import { KvService } from './kv-service.ts';
import { LeaderChores } from './leader-chores.ts';
import { MembershipHistory } from './membership-history.ts';
import { Metrics } from './metrics.ts';
import { admitPeer, standingOf } from './peer-admission.ts';
import { loadProtos } from '../proto/loader.ts';
import { RaftNode } from './raft-node.ts';
import { NodeTls } from '../tls/node-tls.ts';
import { watchMajorGcs } from './major-gc-watch.ts';
import { WatchHub } from './watch-hub.ts';

export const CLUSTER_ID_FILE = 'cluster-id';

export interface RunningNode {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly raft: RaftNode;
  /** This node's TLS material (null in plaintext). */
  readonly tls: NodeTls | null;
  /**
   * Re-reads what may change without a restart (SIGHUP): the TLS files, and
   * whatever registers a step in `reloadSteps` (e.g. an auth file). A step
   * that fails is logged and keeps its old material; the others still run.
   */
  reload(): ReloadOutcome[];
  stop(): Promise<void>;
  /** Settles when a part the node cannot run without has failed (a client thread died): the node should stop and exit non-zero. */
  readonly failed: Promise<Error>;
}

/** One reloadable part: `run` re-reads it (throwing keeps the old), and returns what to log about the new one. */
export interface ReloadStep {
  readonly name: string;
  readonly run: () => Record<string, unknown> | void;
}

export interface ReloadOutcome {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
}

/** Runs every step; each one's failure is logged and reported, never thrown. */
export function runReloadSteps(steps: readonly ReloadStep[], logger: Logger): ReloadOutcome[] {
  return steps.map(({ name, run }) => {
    try {
      const details = run() ?? {};
      logger.info({ part: name, ...details }, 'reloaded');
      return { name, ok: true };
    } catch (error) {
      const message = (error as Error).message;
      logger.error({ part: name, err: message }, 'reload failed: still using the previous one');
      return { name, ok: false, error: message };
    }
  });
}

/**
 * The cluster id of a new cluster: its name and its bootstrap membership, so
 * that two clusters started with different member lists never mix data dirs.
 */
export function bootstrapClusterId(config: Config): string {
  const members = [...config.initialCluster].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, addr]) => `${id}=${addr}`);
  const digest = createHash('sha256').update(`${config.clusterName}\n${members.join(',')}`).digest('hex').slice(0, 12);
  return `${config.clusterName}-${digest}`;
}

export async function startNode(config: Config, logger: Logger): Promise<RunningNode> {
  mkdirSync(config.dataDir, { recursive: true });
  // Before anything else: bad certificate files must stop the start with a clear error, not surface at the first handshake.
  const tls = config.tls === null ? null : NodeTls.load(config.tls, config.id);
  const reloadSteps: ReloadStep[] = [];
  if (tls !== null) {
    reloadSteps.push({
      name: 'tls',
      run: () => {
        const { serialNumber, validTo } = tls.reload();
        return { serialNumber, validTo };
      },
    });
  }
  const clusterId = await resolveClusterId(config, logger, tls?.clientChannelCredentials() ?? grpc.credentials.createInsecure());
  const storage = NodeStorage.open(config.dataDir, { clusterId, nodeId: config.id, create: true });
  const stopping: (() => Promise<void> | void)[] = [() => storage.close(), watchMajorGcs()];
  let reportFailure: (error: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => (reportFailure = resolve));
  try {
    await bootstrapIfNew(config, storage, logger);
    // TEST ONLY (--test-faults-file, for the chaos suite): null otherwise, and then nothing below changes.
    const faults = config.testFaultsFile === null ? null : FaultInjection.start(config.testFaultsFile, logger.child({ component: 'faults' }));
    if (faults !== null) {
      stopping.unshift(() => faults.stop());
      faults.wrapPersist(storage);
    }
    const now = faults?.now ?? Date.now;
    const addresses = new AddressBook(config.dataDir);
    for (const [id, peerAddr] of config.initialCluster) addresses.update(id, { peerAddr });
    addresses.update(config.id, { peerAddr: config.advertisePeerAddr, clientAddr: config.advertiseClientAddr });

    let raftNode: RaftNode | null = null;
    let watchHub: WatchHub | null = null;
    const metrics = new Metrics(() => {
      const node = raftNode as RaftNode;
      const status = node.status;
      // Zeros while the state is restored at start-up.
      const state = node.restoring ? null : node.state;
      return {
        term: status.term,
        isLeader: node.isLeader,
        role: status.role,
        commitIndex: status.commit,
        appliedIndex: state?.lastAppliedIndex ?? 0,
        lastIndex: status.lastIndex,
        snapshotIndex: status.snapshotIndex,
        keys: state === null ? 0 : state.keyCount(node.readTimeMs()),
        memoryUsedBytes: state?.memoryUsed() ?? 0,
        watchers: watchHub?.watcherCount ?? 0,
        restoring: state === null,
      };
    });
    // The peer API listens before the node is wired: messages that come before are dropped (Raft
    // tolerates lost messages). The node takes part in Raft while its state is still being restored
    // from the snapshot (seconds with a large one), so a whole cluster restarted at once elects a
    // leader during its restores; only snapshot transfers are refused until the restore is done.
    let restored: { readonly node: RaftNode; readonly history: MembershipHistory } | null = null;
    let forwardReceiver: ForwardReceiver | null = null;
    const transport = new PeerTransport({
      nodeId: config.id,
      clusterId,
      listenAddress: config.peerAddr,
      logger: logger.child({ component: 'transport' }),
      advertisedClientAddr: config.advertiseClientAddr,
      advertisedPeerAddr: config.advertisePeerAddr,
      onMessages: (messages) => restored?.node.step(messages),
      // A received buffer would count as new external memory in V8 and start major GCs of the full heap (src/state/long-lived-buffers.ts).
      retainEntries: longLivedCopy,
      onPeerInfo: (peer, info) => addresses.update(peer, info),
      onUnreachable: (peer) => restored?.node.reportUnreachable(peer),
      onReachable: (peer) => restored?.node.reportReachable(peer),
      onSnapshotStatus: (peer, ok) => restored?.node.reportSnapshot(peer, ok),
      onForward: (call) => {
        if (forwardReceiver !== null) forwardReceiver.serve(call);
        else call.emit('error', { code: grpc.status.UNAVAILABLE, details: `member ${config.id} is starting: forward later` });
      },
      ...(tls === null
        ? {}
        : { credentials: { server: tls.peerServerCredentials(), client: tls.peerChannelCredentials(), certificateProblem: tls.peerCertificateProblem } }),
      admit: (from, messages) => {
        if (restored === null) return null; // dropped by onMessages anyway
        const { node, history } = restored;
        return admitPeer(from, messages, (id) => standingOf(id, node.membership, node.commitIndex, history.get(id)));
      },
      onRemoved: (peer, index, reason) => {
        if (restored === null) return; // it is said again on the next refused stream
        restored.node.removedFromCluster(peer, index, reason);
        if (restored.node.removedAtIndex !== null) updatePeers();
      },
      snapshots: {
        open: (meta) => {
          const latest = storage.latestSnapshot;
          if (latest === null || latest.index !== meta.index) throw new Error(`snapshot ${meta.index} is no longer here (latest: ${latest?.index ?? 'none'})`);
          return storage.snapshotChunks(latest);
        },
        receive: async (meta, chunks) => {
          const node = restored?.node;
          // One restore at a time: the leader's transfer fails, and it sends the snapshot again later.
          if (node === undefined || node.restoring) throw new Error(`node ${config.id} is still restoring its state from its own snapshot; send yours later`);
          const receiver = await storage.receiveSnapshot({ index: meta.index, term: meta.term });
          let offset = 0;
          try {
            for await (const chunk of chunks) {
              await receiver.append(chunk, offset);
              offset += chunk.length;
            }
            node.snapshotReceived(await receiver.finish());
          } catch (error) {
            await receiver.abort();
            throw error;
          }
        },
      },
    });
    const peerPort = await transport.start();
    stopping.unshift(() => transport.close());

    const node = RaftNode.open({
      id: config.id,
      storage,
      stateConfig: { maxMemoryBytes: config.maxMemoryBytes, eviction: config.eviction, maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes },
      logger: logger.child({ component: 'raft' }),
      tickMs: config.heartbeatMs,
      electionTicks: Math.max(2, Math.round(config.electionMs / config.heartbeatMs)),
      maxInflightAppends: config.maxInflightAppends,
      snapshotEntries: config.snapshotEntries,
      snapshotBytes: config.snapshotBytes,
      snapshotKeepEntries: config.snapshotKeepEntries,
      now,
      metrics,
      ...(faults === null ? {} : { restoreGate: () => faults.restoreReleased() }),
    });
    raftNode = node;
    // A restore that fails leaves a node that can apply nothing: it stops, and the process exits non-zero.
    node.restored.catch(reportFailure);
    // The state starts at the snapshot's index (the core's applied index before anything is applied).
    const hub = new WatchHub(node.status.applied);
    watchHub = hub;
    const history = new MembershipHistory(config.dataDir, node.membership);
    node.onMembershipChange((change, index) => history.recordChange(change, index));
    node.onSnapshotInstalled((index, membership) => history.recordSnapshot(membership, index));
    restored = { node, history };
    // Every node we know how to reach, not only members: a node that just joined
    // knows no membership yet, but must answer the leader that streams to it.
    // A node told it was removed talks to no one (its streams would only be refused again) until it is added back.
    const updatePeers = () => {
      const peers = new Map<NodeId, string>();
      if (node.removedAtIndex === null) {
        for (const [id, { peerAddr }] of addresses.entries()) if (id !== config.id && peerAddr !== '') peers.set(id, faults?.dialAddress(id, peerAddr) ?? peerAddr);
      }
      transport.setPeers(peers);
    };
    node.setSender(transport);
    node.onMembershipChange((change) => {
      if (change.type === 'addLearner' && change.nodeId === config.id) updatePeers();
      if (change.type === 'addLearner') {
        const known = decodeMemberContext(change.context);
        if (known !== null) addresses.update(change.nodeId, known);
      } else if (change.type === 'remove' && change.nodeId !== config.id) {
        addresses.remove(change.nodeId);
      }
    });
    addresses.onChange(updatePeers);
    faults?.onChange(updatePeers);
    updatePeers();

    // Serving: a leader is known, and the state is restored (a restoring node's serializable reads wait for it).
    const serving = (): boolean => node.leader !== '' && !node.restoring;
    const health = new HealthService(serving);
    node.onApplied(({ entry }) => {
      if (entry.type === 'normal') hub.onApplied(entry, node.state);
    });
    node.onSnapshotInstalled((index) => {
      hub.onSnapshotInstalled(index);
      updatePeers();
    });
    node.onLeaderChange(() => health.changed());
    void node.restored.then(() => health.changed(), () => {});

    const isMember = (id: string): boolean => {
      const { voters, learners } = node.status.conf;
      return voters.includes(id) || learners.includes(id);
    };
    const auth = config.authFile === null ? null : new Authenticator(config.authFile, isMember);
    if (auth !== null) {
      logger.info({ authFile: config.authFile, users: auth.userCount }, 'client authentication on');
      reloadSteps.push({ name: 'auth file', run: () => auth.reload() });
    }

    const protos = loadProtos();
    // Forwarded Cluster calls go to the leader's client port: TLS like any client's, presenting this node's certificate.
    const forwarder = new Forwarder(protos, tls?.clientChannelCredentials() ?? grpc.credentials.createInsecure());
    stopping.unshift(() => forwarder.close());
    // KV calls go to the leader in batches on the Raft connection (forward-client.ts).
    const forwardClient = new ForwardClient((peer) => transport.openForwardStream(peer));
    stopping.unshift(() => forwardClient.close());
    const kv = new KvService({
      node,
      addresses,
      forwardClient,
      watchHub: hub,
      limits: { maxKeyBytes: config.maxKeyBytes, maxValueBytes: config.maxValueBytes, maxKeysPerCall: config.maxKeysPerCall },
      requestTimeoutMs: config.requestTimeoutMs,
      metrics,
      maxWatchesPerConnection: config.maxWatchesPerConnection,
      auth,
    });
    const cluster = new ClusterService({
      node,
      storage,
      addresses,
      forwarder,
      clusterId,
      clientAddr: config.advertiseClientAddr,
      maxMemoryBytes: config.maxMemoryBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      leaderHint: () => kv.leaderHint(),
      auth,
    });

    const kvHandlers = kv.implementation();
    forwardReceiver = new ForwardReceiver([{ definition: protos.kv, handlers: kvHandlers }]);
    const clientApi = await serveClientPort({
      config,
      tls,
      protos,
      implementations: { kv: kvHandlers, cluster: cluster.implementation(), health: health.implementation() },
      logger,
      onFatal: reportFailure,
    });
    const clientPort = clientApi.port;
    stopping.unshift(() => clientApi.stop());
    if (config.clientThreads > 0 && tls !== null) reloadSteps.push({ name: 'client threads tls', run: () => clientApi.reload() });

    const http = await startHttpServer(config.httpAddr, {
      metrics: () => metrics.render(),
      ready: serving,
      status: () => cluster.status(),
      members: () => cluster.members(),
    });
    stopping.unshift(() => closeHttp(http.server));

    const chores = new LeaderChores({
      node,
      logger: logger.child({ component: 'chores' }),
      metrics,
      maxMemoryBytes: config.maxMemoryBytes,
      evict: config.eviction === 'lru',
      intervalMs: config.heartbeatMs,
      requestTimeoutMs: config.requestTimeoutMs,
      now,
    });
    node.start();
    chores.start();
    stopping.unshift(() => {
      chores.stop();
      node.stop();
    });
    logger.info(
      { clusterId, clientPort, peerPort, httpPort: http.port, dataDir: config.dataDir, tls: tls === null ? false : { serialNumber: tls.material.serialNumber, clientCertAuth: config.clientCertAuth } },
      'node started',
    );

    let stopped: Promise<void> | null = null;
    return {
      id: config.id,
      clusterId,
      clientPort,
      peerPort,
      httpPort: http.port,
      raft: node,
      tls,
      reload: () => {
        if (reloadSteps.length === 0) logger.info({}, 'reload: nothing to reload');
        return runReloadSteps(reloadSteps, logger);
      },
      stop: () => {
        stopped ??= runAll(stopping);
        return stopped;
      },
      failed,
    };
  } catch (error) {
    await runAll(stopping);
    throw error;
  }
}

async function runAll(steps: readonly (() => Promise<void> | void)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch {
      // Shutting down: one step failing must not keep the others (and the data dir lock) held.
    }
  }
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A new data dir of an initial member gets the bootstrap snapshot: index 1, the membership, an empty state. */
async function bootstrapIfNew(config: Config, storage: NodeStorage, logger: Logger): Promise<void> {
  const isNew = storage.latestSnapshot === null && storage.lastIndex === 0 && storage.hardState.term === 0;
  if (!isNew || config.join !== null) return;
  const initial = bootstrapState([...config.initialCluster.keys()]);
  const snapshot = initial.snapshot;
  if (snapshot === null) throw new Error('bootstrap state has no snapshot');
  await storage.bootstrap({ ...snapshot, logTimeMs: 0 });
  logger.info({ members: [...config.initialCluster.keys()] }, 'bootstrapped a new cluster member');
}

/**
 * The cluster id is fixed when a data dir is first used: from the bootstrap
 * membership, or asked of the cluster being joined. Later starts read it back.
 */
async function resolveClusterId(config: Config, logger: Logger, credentials: grpc.ChannelCredentials): Promise<string> {
  const file = join(config.dataDir, CLUSTER_ID_FILE);
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    if (config.join === null) {
      const expected = bootstrapClusterId(config);
      if (stored !== expected && !existsSync(join(config.dataDir, 'joined'))) {
        throw new Error(
          `data dir ${config.dataDir} belongs to cluster ${stored}, but --cluster-name and --initial-cluster describe ${expected}; use the flags it was created with, or another data dir`,
        );
      }
    }
    return stored;
  }
  let clusterId: string;
  if (config.join === null) {
    clusterId = bootstrapClusterId(config);
  } else {
    clusterId = await askClusterId(config.join, logger, credentials);
    writeFileSync(join(config.dataDir, 'joined'), `${config.join}\n`);
  }
  writeFileSync(file, `${clusterId}\n`);
  return clusterId;
}

async function askClusterId(joinAddress: string, logger: Logger, credentials: grpc.ChannelCredentials): Promise<string> {
  const protos = loadProtos();
  const client = new protos.clients.cluster(joinAddress, credentials);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const status = await new Promise<Record<string, unknown>>((resolve, reject) =>
          (client as unknown as Record<string, (r: object, o: grpc.CallOptions, cb: (e: Error | null, r?: Record<string, unknown>) => void) => void>)['Status']?.call(
            client,
            {},
            { deadline: Date.now() + 2000 },
            (error, response) => (error === null && response !== undefined ? resolve(response) : reject(error ?? new Error('no response'))),
          ),
        );
        const id = status['cluster_id'];
        if (typeof id === 'string' && id !== '') return id;
        throw new Error('the member answered without a cluster id');
      } catch (error) {
        if (attempt >= 30) throw new Error(`cannot reach ${joinAddress} to join its cluster: ${(error as Error).message}`, { cause: error });
        logger.warn({ join: joinAddress, attempt }, 'waiting for the cluster to join');
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  } finally {
    client.close();
  }
}
