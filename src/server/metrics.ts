/**
 * Prometheus metrics in the text exposition format. Counters and histograms
 * are updated on the hot path (a few array writes each); gauges are read from
 * the node when /metrics is scraped.
 */

const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > (LATENCY_BUCKETS_MS[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += ms;
    this.count++;
  }

  render(name: string, labels: string, out: string[]): void {
    let cumulative = 0;
    LATENCY_BUCKETS_MS.forEach((le, i) => {
      cumulative += this.counts[i] as number;
      out.push(`${name}_bucket{${labels}${labels === '' ? '' : ','}le="${le / 1000}"} ${cumulative}`);
    });
    out.push(`${name}_bucket{${labels}${labels === '' ? '' : ','}le="+Inf"} ${this.count}`);
    out.push(`${name}_sum${labels === '' ? '' : `{${labels}}`} ${this.sum / 1000}`);
    out.push(`${name}_count${labels === '' ? '' : `{${labels}}`} ${this.count}`);
  }
}

/** What the node reports at scrape time. */
export interface NodeGauges {
  readonly term: number;
  readonly isLeader: boolean;
  readonly role: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly keys: number;
  readonly memoryUsedBytes: number;
  readonly watchers: number;
  /** The state is still being restored from the snapshot at start-up. */
  readonly restoring: boolean;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly requestLatency = new Map<string, Histogram>();
  private readonly forwardedByMethod = new Map<string, number>();
  readonly applyLatency = new Histogram();
  readonly persistLatency = new Histogram();
  proposals = 0;
  proposalsFailed = 0;
  entriesApplied = 0;
  snapshotsTaken = 0;
  snapshotsIncremental = 0;
  lastSnapshotBytes = 0;
  snapshotsInstalled = 0;
  keysExpired = 0;
  keysEvicted = 0;

  constructor(private readonly gauges: () => NodeGauges) {}

  observeRequest(method: string, code: string, ms: number): void {
    const key = `${method}|${code}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let histogram = this.requestLatency.get(method);
    if (histogram === undefined) {
      histogram = new Histogram();
      this.requestLatency.set(method, histogram);
    }
    histogram.observe(ms);
  }

  forwarded(method: string): void {
    this.forwardedByMethod.set(method, (this.forwardedByMethod.get(method) ?? 0) + 1);
  }

  render(): string {
    const g = this.gauges();
    const out: string[] = [];
    const gauge = (name: string, help: string, value: number, labels = '') => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}${labels === '' ? '' : `{${labels}}`} ${value}`);
    };
    const counter = (name: string, help: string, value: number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
    };
    gauge('quorumkv_raft_term', 'Current Raft term.', g.term);
    gauge('quorumkv_raft_is_leader', '1 when this node is the leader.', g.isLeader ? 1 : 0);
    gauge('quorumkv_raft_role', 'This node\'s role (the label); always 1.', 1, `role="${g.role}"`);
    gauge('quorumkv_raft_commit_index', 'Highest log index known committed.', g.commitIndex);
    gauge('quorumkv_raft_applied_index', 'Highest log index applied to the state machine.', g.appliedIndex);
    gauge('quorumkv_raft_last_index', 'Last index in the log.', g.lastIndex);
    gauge('quorumkv_raft_snapshot_index', 'Index of the latest snapshot.', g.snapshotIndex);
    gauge('quorumkv_state_restoring', '1 while the state is restored from the snapshot at start-up (Raft runs; nothing is applied or served from the state).', g.restoring ? 1 : 0);
    gauge('quorumkv_keys', 'Keys in the state machine.', g.keys);
    gauge('quorumkv_memory_used_bytes', 'Accounted bytes of keys and values.', g.memoryUsedBytes);
    gauge('quorumkv_watchers', 'Open Watch streams.', g.watchers);
    counter('quorumkv_proposals_total', 'Entries proposed by this node as leader.', this.proposals);
    counter('quorumkv_proposals_failed_total', 'Proposals that did not commit (leadership lost, timeout).', this.proposalsFailed);
    counter('quorumkv_entries_applied_total', 'Log entries applied.', this.entriesApplied);
    counter('quorumkv_snapshots_taken_total', 'Snapshots written by this node.', this.snapshotsTaken);
    counter('quorumkv_snapshots_incremental_total', 'Snapshots written as a copy of the previous file with the changed keys rewritten.', this.snapshotsIncremental);
    gauge('quorumkv_snapshot_last_size_bytes', 'Size of the latest snapshot file written.', this.lastSnapshotBytes);
    counter('quorumkv_snapshots_installed_total', 'Snapshots installed from the leader.', this.snapshotsInstalled);
    counter('quorumkv_keys_expired_total', 'Keys removed by TTL sweeps.', this.keysExpired);
    counter('quorumkv_keys_evicted_total', 'Keys evicted under the memory budget.', this.keysEvicted);
    out.push('# HELP quorumkv_apply_duration_seconds Time to apply one Ready\'s committed entries.', '# TYPE quorumkv_apply_duration_seconds histogram');
    this.applyLatency.render('quorumkv_apply_duration_seconds', '', out);
    out.push('# HELP quorumkv_fsync_duration_seconds Time to persist one Ready durably (SQLite commit with fsync).', '# TYPE quorumkv_fsync_duration_seconds histogram');
    this.persistLatency.render('quorumkv_fsync_duration_seconds', '', out);
    out.push('# HELP quorumkv_requests_total Client requests by method and gRPC status code.', '# TYPE quorumkv_requests_total counter');
    for (const [key, value] of this.requests) {
      const [method, code] = key.split('|');
      out.push(`quorumkv_requests_total{method="${method}",code="${code}"} ${value}`);
    }
    out.push('# HELP quorumkv_request_duration_seconds Client request latency by method.', '# TYPE quorumkv_request_duration_seconds histogram');
    for (const [method, histogram] of this.requestLatency) histogram.render('quorumkv_request_duration_seconds', `method="${method}"`, out);
    out.push('# HELP quorumkv_forwarded_total Requests a follower forwarded to the leader.', '# TYPE quorumkv_forwarded_total counter');
    for (const [method, value] of this.forwardedByMethod) out.push(`quorumkv_forwarded_total{method="${method}"} ${value}`);
    return `${out.join('\n')}\n`;
  }
}
