/**
 * grpc.health.v1.Health on the client port. A node is SERVING when it can
 * answer requests: it is running and knows a leader (so writes and
 * linearizable reads can go through). Kubernetes readiness probes and load
 * balancers use this.
 */
import * as grpc from '@grpc/grpc-js';
import type { ProtoMessage } from './kv-commands.ts';
import type { HealthMethod, ImplementationOf } from '../proto/loader.ts';
import { SERVICE_NAMES } from '../proto/loader.ts';

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** '' is the whole server; the others are the services on the client port. */
const KNOWN_SERVICES = new Set(['', SERVICE_NAMES.kv, SERVICE_NAMES.cluster, SERVICE_NAMES.health]);

export class HealthService {
  private readonly watchers = new Set<() => void>();

  constructor(private readonly serving: () => boolean) {}

  /** Tells Watch streams to look again (call when leadership or liveness changes). */
  changed(): void {
    for (const notify of this.watchers) notify();
  }

  statusOf(service: string): ServingStatus {
    if (!KNOWN_SERVICES.has(service)) return 'SERVICE_UNKNOWN';
    return this.serving() ? 'SERVING' : 'NOT_SERVING';
  }

  implementation(): ImplementationOf<HealthMethod> {
    return {
      Check: ((call: grpc.ServerUnaryCall<ProtoMessage, ProtoMessage>, callback: grpc.sendUnaryData<ProtoMessage>) => {
        const service = typeof call.request['service'] === 'string' ? call.request['service'] : '';
        const status = this.statusOf(service);
        if (status === 'SERVICE_UNKNOWN') callback({ code: grpc.status.NOT_FOUND, details: `unknown service '${service}'` });
        else callback(null, { status });
      }) as grpc.UntypedHandleCall,
      Watch: ((call: grpc.ServerWritableStream<ProtoMessage, ProtoMessage>) => {
        const service = typeof call.request['service'] === 'string' ? call.request['service'] : '';
        let last: ServingStatus | null = null;
        const notify = () => {
          const status = this.statusOf(service);
          if (status !== last) {
            last = status;
            call.write({ status });
          }
        };
        this.watchers.add(notify);
        call.on('cancelled', () => this.watchers.delete(notify));
        call.on('close', () => this.watchers.delete(notify));
        notify();
      }) as grpc.UntypedHandleCall,
    };
  }
}
