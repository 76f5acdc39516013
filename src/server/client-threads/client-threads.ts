/**
 * --client-threads N: the client API served from N worker threads, so that
 * gRPC/HTTP/2 (and TLS) work runs beside Raft and the state machine instead
 * of on the same core. Each worker runs a grpc-js server on the shared client
 * port and forwards every call as raw bytes; the main thread runs the same
 * service handlers as without threads (worker-link.ts, forwarded-call.ts).
 *
 * A worker that dies leaves the node unable to serve part of its clients, so
 * it is fatal: onFatal is told, and the node stops (a supervisor restarts it).
 */
import type { Worker } from 'node:worker_threads';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Protos } from '../../proto/loader.ts';
import { startWorker } from '../../threads/start-worker.ts';
import { clientMethods } from './protocol.ts';
import type { ForwardedServiceKey, WorkerSettings, WorkerToMain } from './protocol.ts';
import { WorkerLink } from './worker-link.ts';
import type { ServedMethod } from './worker-link.ts';

export interface ClientThreadsOptions {
  readonly threads: number;
  /** host:port to listen on (port 0: any free port). */
  readonly address: string;
  readonly serverOptions: grpc.ServerOptions;
  readonly tls: WorkerSettings['tls'];
  readonly protos: Protos;
  /** The handlers of each forwarded service, as server.addService() would take them. */
  readonly implementations: Record<ForwardedServiceKey, grpc.UntypedServiceImplementation>;
  readonly logger: Logger;
  /** A worker failed after the start; the node should stop. */
  readonly onFatal: (error: Error) => void;
}

export class ClientThreadError extends Error {
  readonly code = 'CLIENT_THREAD_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientThreadError';
  }
}

export function splitHostPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (match === null) throw new ClientThreadError(`cannot serve the client API on ${address}: not host:port`);
  return { host: match[1] as string, port: Number(match[2]) };
}

export class ClientThreads {
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly port: number,
    private readonly workers: readonly Worker[],
    private readonly links: readonly WorkerLink[],
    private readonly logger: Logger,
  ) {}

  static async start(options: ClientThreadsOptions): Promise<ClientThreads> {
    const methods: ServedMethod[] = clientMethods(options.protos).map((method) => {
      const handler = options.implementations[method.service][method.name];
      if (handler === undefined) throw new ClientThreadError(`no handler for ${method.service}/${method.name}`);
      return { ...method, handler };
    });
    const { host, port } = splitHostPort(options.address);
    const workers: Worker[] = [];
    const links: WorkerLink[] = [];
    let started = false;
    let failed = false;
    let threads: ClientThreads | null = null;

    const spawn = (index: number): Promise<{ port: number; fd: number }> =>
      new Promise((resolve, reject) => {
        const settings: WorkerSettings = { index, host, port, serverOptions: options.serverOptions, tls: options.tls };
        const worker = startWorker('server/client-threads/worker.ts', { workerData: { settings }, name: `client-thread-${index}` });
        const link = new WorkerLink(worker, methods);
        workers.push(worker);
        links.push(link);
        const fail = (error: Error): void => {
          if (!started) {
            reject(new ClientThreadError(`cannot serve the client API on ${options.address}: client thread ${index}: ${error.message}`, { cause: error }));
            return;
          }
          if (threads?.stopping !== null || failed) return;
          failed = true;
          link.abandon();
          options.logger.error({ thread: index, err: error.message }, 'a client thread failed: stopping the node');
          options.onFatal(new ClientThreadError(`client thread ${index} failed: ${error.message}`, { cause: error }));
        };
        worker.on('message', (message: WorkerToMain) => {
          switch (message.type) {
            case 'calls':
              link.receive(message);
              break;
            case 'listening':
              resolve({ port: message.port, fd: message.fd });
              break;
            case 'failed':
              fail(new Error(message.message));
              break;
            case 'warning':
              options.logger.warn({ thread: index, err: message.message }, 'client thread: listening socket error');
              break;
            case 'reloaded':
              if (message.ok) options.logger.info({ thread: index, serialNumber: message.serialNumber }, 'client thread reloaded its TLS files');
              else options.logger.error({ thread: index, err: message.error }, 'client thread TLS reload failed: still using the previous files');
              break;
            case 'drained':
              worker.emit('drained');
              break;
          }
        });
        worker.on('error', fail);
        // A thread that exits closes the listening fd its siblings share, and libuv aborts the process at a
        // sibling's next epoll_ctl on it: the node stops either way, by onFatal's exit or by that abort.
        worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
      });

    try {
      // All start (load code and protos) at once; the first opens the port, then the others listen on its socket.
      const listening = Array.from({ length: options.threads }, (_, index) => spawn(index));
      // The others' rejections are awaited below; until then they must not count as unhandled.
      for (const promise of listening) promise.catch(() => {});
      const first = await (listening[0] as Promise<{ port: number; fd: number }>);
      for (const link of links.slice(1)) link.send({ type: 'listen', fd: first.fd });
      await Promise.all(listening);
      started = true;
      threads = new ClientThreads(first.port, workers, links, options.logger);
      return threads;
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      throw error;
    }
  }

  /** TEST ONLY: ends thread `index` as a crash would, to prove that the node is told. */
  async killThreadForTest(index: number): Promise<void> {
    await this.workers[index]?.terminate();
  }

  /** SIGHUP: every worker re-reads the TLS files (each logs how that went). */
  reload(): void {
    for (const link of this.links) link.send({ type: 'reload' });
  }

  /**
   * Workers refuse new connections, let calls finish for `graceMs` (the main
   * thread keeps answering them meanwhile), then cut the rest. The threads
   * stay parked until the process ends (see worker.ts drain()).
   */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= Promise.all(
      this.workers.map(
        (worker, index) =>
          new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              this.links[index]?.abandon();
              worker.unref();
              resolve();
            };
            const timer = setTimeout(() => {
              this.logger.warn({ thread: index }, 'client thread did not drain in time');
              done();
            }, graceMs + 2000);
            // A worker that has exited already (threadId -1) has nothing to drain.
            if (worker.threadId === -1) {
              done();
              return;
            }
            worker.once('drained', done);
            worker.once('exit', done);
            this.links[index]?.send({ type: 'drain', graceMs });
          }),
      ),
    ).then(() => undefined);
    return this.stopping;
  }
}
