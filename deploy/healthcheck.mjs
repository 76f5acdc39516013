#!/usr/bin/env node
// Container health check: exits 0 when this node's GET /healthz answers 2xx.
// The address is the argument if given, else QUORUMKV_HTTP_ADDR (what
// `quorumkv serve` itself reads), else serve's default. Plain JavaScript with
// node:http because the slim image has no curl or wget, and loading tsx for
// this would only slow down a check that runs every few seconds.
import http from 'node:http';
import process from 'node:process';

const address = process.argv[2] ?? process.env.QUORUMKV_HTTP_ADDR ?? '127.0.0.1:7201';
const colon = address.lastIndexOf(':');
let host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
// A wildcard listen address is not something to dial: ask the loopback of the same family.
if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
if (host === '::') host = '::1';
const port = Number(address.slice(colon + 1));

const request = http.get({ host, port, path: '/healthz', timeout: 2000 }, (response) => {
  response.resume();
  const status = response.statusCode ?? 0;
  if (status < 200 || status >= 300) process.stderr.write(`healthcheck: http://${address}/healthz answered ${status}\n`);
  process.exit(status >= 200 && status < 300 ? 0 : 1);
});
request.on('timeout', () => request.destroy(new Error('no answer within 2 s')));
request.on('error', (error) => {
  process.stderr.write(`healthcheck: http://${address}/healthz: ${error.message}\n`);
  process.exit(1);
});
