/**
 * The report of a chaos run, in its folder:
 * - history.json: options, checks, figures, fault windows, events, every operation;
 * - index.html: one self-contained page, the verdicts and an SVG timeline of
 *   throughput, latency, each client's operations and the fault windows;
 * - nodes/*.log: each node's own log (written by the cluster as it runs).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckResult } from './checks.ts';
import type { FaultRecord, History, OpRecord } from './history.ts';
import type { ChaosOptions, Figures } from './options.ts';

export interface ReportData {
  readonly options: ChaosOptions;
  readonly checks: readonly CheckResult[];
  readonly figures: Figures;
  readonly history: History;
  readonly rerun: string;
  readonly statuses: Record<string, unknown>;
  readonly proxyLinks: number;
}

export function writeReport(dir: string, data: ReportData): void {
  const { options, checks, figures, history, rerun, statuses } = data;
  const { progress: _progress, ...settings } = options;
  const json = {
    seed: options.seed,
    rerun,
    settings,
    figures,
    checks,
    statuses,
    faults: history.faults,
    events: history.events,
    ops: history.ops,
  };
  writeFileSync(join(dir, 'history.json'), JSON.stringify(json, (_key, value: unknown) => (value === Infinity ? null : value)));
  writeFileSync(join(dir, 'index.html'), html(data));
}

// ---- the page -------------------------------------------------------------------

const WIDTH = 1500;
const LEFT = 150;
const RIGHT = 20;
const PLOT = WIDTH - LEFT - RIGHT;
const COLORS = { ok: '#3a9d5d', fail: '#9a9a9a', unknown: '#f08c00', fault: '#d9480f', recovery: '#ffd8a8' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function seconds(ms: number | null): string {
  return ms === null ? '—' : `${(ms / 1000).toFixed(2)}s`;
}

function html(data: ReportData): string {
  const { options, checks, figures, history, rerun, statuses } = data;
  const passed = checks.filter((c) => c.ok).length;
  const failed = checks.length - passed;
  const rows = checks
    .map(
      (c) =>
        `<tr class="${c.ok ? 'pass' : 'fail'}"><td>${c.ok ? 'PASS' : 'FAIL'}</td><td>${esc(c.name)}</td><td>${esc(c.summary)}${
          c.details === '' ? '' : `<details><summary>details</summary><pre>${esc(c.details)}</pre></details>`
        }</td></tr>`,
    )
    .join('\n');
  const figureRows = [
    ['operations', `${figures.operations} (ok ${figures.ok}, fail ${figures.failed}, unknown ${figures.unknown})`],
    ...Object.entries(figures.byWorkload).map(([w, c]) => [`  ${w}`, `ok ${c.ok}, fail ${c.fail}, unknown ${c.unknown}`]),
    ['faults injected', `${figures.faultsInjected} (${Object.entries(figures.faultsByNemesis).map(([n, c]) => `${n} ${c}`).join(', ')})`],
    ['longest unavailability after a leader kill', `${seconds(figures.longestLeaderKillUnavailabilityMs)} (${seconds(figures.longestLoneLeaderKillUnavailabilityMs)} when no other fault overlapped)`],
    ['slowest recovery after a heal', seconds(figures.slowestRecoveryMs)],
    ['internal errors', String(figures.internalErrors)],
    ['run time', seconds(figures.durationMs)],
  ]
    .map(([k, v]) => `<tr><td>${esc(k ?? '')}</td><td>${esc(v ?? '')}</td></tr>`)
    .join('\n');
  const faultRows = history.faults
    .map(
      (f) =>
        `<tr><td>${seconds(f.start)}</td><td>${esc(f.nemesis)}</td><td>${esc(f.description)}</td><td>${seconds(f.end)}</td><td>${
          f.cycleHealed !== null && f.recovered !== null ? seconds(f.recovered - f.cycleHealed) : '—'
        }</td><td>${esc(f.error ?? '')}</td></tr>`,
    )
    .join('\n');
  const events = history.events.map((e) => `${seconds(e.at).padStart(9)}  ${e.text}`).join('\n');
  const nodeLinks = Object.keys(statuses).length > 0 ? Object.keys(statuses) : [];
  const logs = [...new Set([...nodeLinks, ...history.ops.map((o) => o.node)])]
    .filter((id) => /^n\d+$/.test(id))
    .sort()
    .map((id) => `<a href="nodes/${id}.log">${id}.log</a>`)
    .join(' ');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>quorumkv chaos seed ${options.seed}: ${passed} passed, ${failed} failed</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 20px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 20px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; vertical-align: top; text-align: left; }
tr.pass td:first-child { color: #2b8a3e; font-weight: bold; }
tr.fail td:first-child { color: #c92a2a; font-weight: bold; }
pre { white-space: pre-wrap; font-size: 12px; max-width: 1400px; }
code { background: #f1f3f5; padding: 2px 4px; }
svg text { font: 11px system-ui, sans-serif; }
</style></head><body>
<h1>Chaos run, seed ${options.seed}: ${passed} passed, ${failed} failed</h1>
<p>${options.nodes} nodes, ${options.clients} clients, ${options.durationS}s of faults from ${esc(options.nemeses.join(', '))}${
    options.ttlEviction ? `; TTLs and a ${esc(options.maxMemory)} memory budget` : ''
  }. Rerun: <code>${esc(rerun)}</code></p>
<h2>Checks</h2><table>${rows}</table>
<h2>Figures</h2><table>${figureRows}</table>
<h2>Timeline</h2>
${timeline(history, figures.durationMs, options.opTimeoutMs)}
<p>Fault windows are shaded red, with the time until writes succeeded again in orange. Operations: <span style="color:${COLORS.ok}">ok</span>, <span style="color:${COLORS.fail}">failed (no effect)</span>, <span style="color:${COLORS.unknown}">unknown outcome</span>.</p>
<h2>Faults</h2><table><tr><th>start</th><th>nemesis</th><th>what</th><th>healed</th><th>writes again after</th><th>error</th></tr>${faultRows}</table>
<h2>Events</h2><pre>${esc(events)}</pre>
<h2>Files</h2><p><a href="history.json">history.json</a> ${logs}</p>
<h2>Final node status</h2><pre>${esc(JSON.stringify(statuses, null, 1))}</pre>
</body></html>
`;
}

function timeline(history: History, durationMs: number, opTimeoutMs: number): string {
  const ops = history.ops.filter((o) => o.phase === 'run');
  // A loop, not Math.max(...ops): a long run has more operations than a call may have arguments.
  let end = Math.max(durationMs, 1);
  for (const o of ops) end = Math.max(end, o.ret ?? o.call);
  const x = (t: number) => LEFT + (Math.min(Math.max(t, 0), end) / end) * PLOT;
  const parts: string[] = [];
  let y = 10;

  // Fault windows: one row per nemesis.
  const nemeses = [...new Set(history.faults.map((f) => f.nemesis))];
  const faultTop = y;
  for (const name of nemeses) {
    parts.push(`<text x="${LEFT - 6}" y="${y + 11}" text-anchor="end">${esc(name)}</text>`);
    for (const f of history.faults.filter((g) => g.nemesis === name)) parts.push(faultBar(f, x, y, end));
    y += 16;
  }
  y += 10;

  // Throughput, stacked by outcome, by call time.
  const buckets = Math.max(10, Math.min(600, Math.round(end / 250)));
  const width = end / buckets;
  const counts = Array.from({ length: buckets }, () => ({ ok: 0, fail: 0, unknown: 0 }));
  const latencies: number[][] = Array.from({ length: buckets }, () => []);
  for (const op of ops) {
    const b = Math.min(buckets - 1, Math.floor(op.call / width));
    const c = counts[b] as { ok: number; fail: number; unknown: number };
    if (op.outcome === 'ok') {
      c.ok++;
      (latencies[b] as number[]).push((op.ret as number) - op.call);
    } else if (op.outcome === 'fail') c.fail++;
    else c.unknown++;
  }
  const rate = (n: number) => n / (width / 1000);
  const maxRate = Math.max(1, ...counts.map((c) => rate(c.ok + c.fail + c.unknown)));
  const tputHeight = 100;
  parts.push(`<text x="${LEFT - 6}" y="${y + 12}" text-anchor="end">ops/s (max ${Math.round(maxRate)})</text>`);
  counts.forEach((c, b) => {
    let base = y + tputHeight;
    for (const kind of ['ok', 'fail', 'unknown'] as const) {
      const h = (rate(c[kind]) / maxRate) * tputHeight;
      if (h <= 0) continue;
      base -= h;
      parts.push(`<rect x="${x(b * width).toFixed(1)}" y="${base.toFixed(1)}" width="${Math.max(1, (PLOT / buckets) - 0.3).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[kind]}"/>`);
    }
  });
  y += tputHeight + 15;

  // Latency of acknowledged operations: p50, p99 and max per bucket, log scale.
  const latHeight = 120;
  const lo = 1;
  const hi = Math.max(opTimeoutMs, 10);
  const ly = (ms: number) => y + latHeight - (Math.log10(Math.max(ms, lo) / lo) / Math.log10(hi / lo)) * latHeight;
  for (const tick of [1, 10, 100, 1000, 10000].filter((t) => t <= hi)) {
    parts.push(`<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${ly(tick).toFixed(1)}" y2="${ly(tick).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${(ly(tick) + 4).toFixed(1)}" text-anchor="end">${tick >= 1000 ? `${tick / 1000}s` : `${tick}ms`}</text>`);
  }
  // One polyline per run of buckets with acknowledged operations: a gap (no answers at all) stays a gap.
  const runs: { p50: string[]; p99: string[]; max: string[] }[] = [];
  let current: { p50: string[]; p99: string[]; max: string[] } | null = null;
  latencies.forEach((list, b) => {
    if (list.length === 0) {
      current = null;
      return;
    }
    if (current === null) {
      current = { p50: [], p99: [], max: [] };
      runs.push(current);
    }
    list.sort((a, c) => a - c);
    const cx = x((b + 0.5) * width).toFixed(1);
    current.p50.push(`${cx},${ly(list[Math.floor(list.length * 0.5)] as number).toFixed(1)}`);
    current.p99.push(`${cx},${ly(list[Math.min(list.length - 1, Math.floor(list.length * 0.99))] as number).toFixed(1)}`);
    current.max.push(`${cx},${ly(list[list.length - 1] as number).toFixed(1)}`);
  });
  for (const run of runs) {
    parts.push(`<polyline points="${run.max.join(' ')}" fill="none" stroke="#ffa8a8" stroke-width="1"/>`);
    parts.push(`<polyline points="${run.p99.join(' ')}" fill="none" stroke="#e8590c" stroke-width="1.2"/>`);
    parts.push(`<polyline points="${run.p50.join(' ')}" fill="none" stroke="#1c7ed6" stroke-width="1.5"/>`);
  }
  parts.push(`<text x="${LEFT + 4}" y="${y + 10}" fill="#1c7ed6">latency p50</text><text x="${LEFT + 80}" y="${y + 10}" fill="#e8590c">p99</text><text x="${LEFT + 110}" y="${y + 10}" fill="#f08080">max</text>`);
  y += latHeight + 15;

  // One lane per client: each operation, or when there are too many, the worst outcome per bucket.
  const clients = [...new Set(ops.map((o) => o.client))].sort((a, b) => a - b);
  const laneTop = y;
  const perOp = ops.length <= 15_000;
  for (const client of clients) {
    const mine = ops.filter((o) => o.client === client);
    const label = client === -1 ? 'probes' : `client ${client} (${mine[0]?.workload ?? ''})`;
    parts.push(`<text x="${LEFT - 6}" y="${y + 9}" text-anchor="end">${esc(label)}</text>`);
    if (perOp) {
      for (const op of mine) {
        const stop = op.ret ?? op.call + opTimeoutMs;
        const kind = op.outcome === 'pending' ? 'unknown' : op.outcome;
        parts.push(
          `<rect x="${x(op.call).toFixed(1)}" y="${y + 1}" width="${Math.max(0.8, x(stop) - x(op.call)).toFixed(1)}" height="8" fill="${COLORS[kind]}"><title>${esc(describeOp(op))}</title></rect>`,
        );
      }
    } else {
      const worst = new Array<number>(buckets).fill(-1);
      for (const op of mine) {
        const b = Math.min(buckets - 1, Math.floor(op.call / width));
        const rank = op.outcome === 'ok' ? 0 : op.outcome === 'fail' ? 1 : 2;
        worst[b] = Math.max(worst[b] as number, rank);
      }
      worst.forEach((rank, b) => {
        if (rank < 0) return;
        const kind = (['ok', 'fail', 'unknown'] as const)[rank] as 'ok' | 'fail' | 'unknown';
        parts.push(`<rect x="${x(b * width).toFixed(1)}" y="${y + 1}" width="${Math.max(1, PLOT / buckets).toFixed(1)}" height="8" fill="${COLORS[kind]}"/>`);
      });
    }
    y += 11;
  }
  y += 10;

  // Fault windows across every chart, under everything else.
  const bands = history.faults
    .map((f) => {
      const stop = f.end ?? end;
      return `<rect x="${x(f.start).toFixed(1)}" y="${faultTop}" width="${Math.max(1, x(stop) - x(f.start)).toFixed(1)}" height="${y - faultTop}" fill="${COLORS.fault}" opacity="0.07"/>`;
    })
    .join('');
  // Time axis.
  const step = niceStep(end / 12);
  const ticks: string[] = [];
  for (let t = 0; t <= end; t += step) {
    ticks.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${faultTop}" y2="${y}" stroke="#f1f3f5"/><text x="${x(t).toFixed(1)}" y="${y + 12}" text-anchor="middle">${(t / 1000).toFixed(0)}s</text>`);
  }
  const height = y + 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">${ticks.join('')}${bands}${parts.join('')}<line x1="${LEFT}" x2="${LEFT}" y1="${laneTop}" y2="${y}" stroke="#ccc"/></svg>`;
}

function faultBar(f: FaultRecord, x: (t: number) => number, y: number, end: number): string {
  const stop = f.end ?? end;
  const title = `${f.nemesis}: ${f.description}\n${seconds(f.start)} .. ${seconds(f.end)}${f.recovered !== null && f.cycleHealed !== null ? `, writes again ${seconds(f.recovered - f.cycleHealed)} after the cycle healed` : ''}${f.error === null ? '' : `\n${f.error}`}`;
  const recovery =
    f.recovered !== null && f.cycleHealed !== null
      ? `<rect x="${x(f.cycleHealed).toFixed(1)}" y="${y + 2}" width="${Math.max(1, x(f.recovered) - x(f.cycleHealed)).toFixed(1)}" height="12" fill="${COLORS.recovery}"><title>${esc(title)}</title></rect>`
      : '';
  return `<rect x="${x(f.start).toFixed(1)}" y="${y + 2}" width="${Math.max(2, x(stop) - x(f.start)).toFixed(1)}" height="12" fill="${COLORS.fault}"><title>${esc(title)}</title></rect>${recovery}`;
}

function describeOp(op: OpRecord): string {
  return `#${op.id} ${op.f} ${op.key} on ${op.node} ${JSON.stringify(op.input)} -> ${op.outcome}${op.output === null ? '' : ` ${JSON.stringify(op.output)}`}${op.error === null ? '' : ` (${op.error})`} [${seconds(op.call)} .. ${seconds(op.ret)}]`;
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}
