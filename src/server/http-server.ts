/**
 * The HTTP port: Prometheus /metrics, /healthz (liveness: the process is up
 * and serving), /readyz (readiness: a leader is known, so requests can go
 * through), and a small status page for people. Liveness must not depend on
 * the leader: restarting every member of a cluster that lost quorum cannot
 * bring it back, it only slows recovery.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpSources {
  readonly metrics: () => string;
  /** Whether the node can serve requests (a leader is known). */
  readonly ready: () => boolean;
  readonly status: () => Record<string, unknown>;
  readonly members: () => Record<string, unknown>;
}

export function startHttpServer(address: string, sources: HttpSources): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    try {
      switch (path) {
        case '/metrics':
          response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(sources.metrics());
          return;
        case '/healthz':
        case '/readyz': {
          const ready = sources.ready();
          const code = path === '/healthz' || ready ? 200 : 503;
          const body = JSON.stringify({ live: true, ready, ...pick(sources.status(), ['id', 'role', 'term', 'leader_id', 'applied_index']) });
          response.writeHead(code, { 'content-type': 'application/json' }).end(`${body}\n`);
          return;
        }
        case '/status':
          response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: sources.status(), ...sources.members() }, null, 2)}\n`);
          return;
        case '/':
          response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(statusPage(sources.status(), sources.members()));
          return;
        default:
          response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /status, /metrics, /healthz or /readyz\n');
      }
    } catch (error) {
      response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
    }
  });
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`cannot serve HTTP on ${address}: ${error.message}`, { cause: error })));
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}

export function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

function pick(source: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in source).map((k) => [k, source[k]]));
}

function escape(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function statusPage(status: Record<string, unknown>, members: Record<string, unknown>): string {
  const rows = Object.entries(status)
    .map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`)
    .join('');
  const list = Array.isArray(members['members']) ? (members['members'] as Record<string, unknown>[]) : [];
  const memberRows = list
    .map((m) => `<tr><td>${escape(m['id'])}</td><td>${escape(m['kind'])}${m['leader'] === true ? ' (leader)' : ''}</td><td>${escape(m['peer_address'])}</td><td>${escape(m['client_address'])}</td><td>${escape(m['match_index'])}</td><td>${escape(m['lag_entries'])}</td></tr>`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>quorumkv ${escape(status['id'])}</title>
<meta http-equiv="refresh" content="2">
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}th,td{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}</style></head>
<body><h1>quorumkv node ${escape(status['id'])}</h1><table>${rows}</table>
<h2>Members</h2><table><tr><th>id</th><th>kind</th><th>peer</th><th>client</th><th>match</th><th>lag</th></tr>${memberRows}</table>
<p><a href="/metrics">/metrics</a> · <a href="/status">/status</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></p></body></html>\n`;
}
