/**
 * The HTTP side of api.bench.ts, in its own process as a real client would be, so its work does
 * not share the server's event loop. Every answer is checked: a non-200 status or a GraphQL
 * `errors` entry counts as failed. Latencies are kept to the microsecond.
 *   - `<connections>` = N: N clients, each sending one request at a time until the time is up,
 *     over keep-alive connections; throughput is counted the way the benchmark counts the
 *     engine's: every request started before the end, over the time until the last answered.
 *     Prints { n, failed, meanMs, p50Ms, p99Ms, requestsPerSecond } as JSON.
 *   - `<connections>` = paired (run with an IPC channel, child_process.fork): one request each
 *     time the parent sends 'go', answered with { ms, ok }; the parent times the engine in
 *     between, so slow drifts of the machine's speed hit both sides alike. Ends on 'stop'.
 * Usage: npx tsx bench/http-client.ts <url> <body-file> <seconds> <connections|paired> [header: value]...
 * Loopback only; stops by itself.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const [url, bodyFile, secondsText, connectionsText, ...headerArgs] = process.argv.slice(2);
if (!url || !bodyFile || !secondsText || !connectionsText) throw new Error('usage: http-client.ts <url> <body-file> <seconds> <connections> [header: value]...');
const paired = connectionsText === 'paired';
const connections = paired ? 1 : Number(connectionsText);
const body = await fs.readFile(bodyFile);
const headers: Record<string, string | number> = { 'content-length': body.length };
for (const h of headerArgs) {
  const at = h.indexOf(':');
  headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
}
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
/** What the first failed answer said (status and the start of its body), for the report. */
let firstFailure: string | undefined;

/** One POST; resolves true when the answer is 200 with data and no errors. */
function post(): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = http.request(url!, { method: 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const answer = Buffer.concat(chunks);
        const ok = res.statusCode === 200 && !answer.includes('"errors"');
        if (!ok) firstFailure ??= `${res.statusCode} ${answer.subarray(0, 300).toString()}`;
        resolve(ok);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

await Promise.all(Array.from({ length: connections }, post)); // opens the connections
if (paired) {
  process.on('message', (m) => {
    if (m === 'stop') {
      agent.destroy();
      process.disconnect();
      return;
    }
    const sent = performance.now();
    void post().then((ok) => process.send!({ ms: performance.now() - sent, ok }));
  });
  process.send!('ready');
} else {
  await measureThroughput();
}

async function measureThroughput(): Promise<void> {
  const times: number[] = [];
  let failed = 0;
  const start = performance.now();
  const end = start + Number(secondsText) * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const sent = performance.now();
        if (!(await post())) failed++;
        times.push(performance.now() - sent);
      }
    }),
  );
  const elapsedS = (performance.now() - start) / 1000;
  agent.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number) => +times[Math.min(times.length - 1, Math.floor(times.length * q))]!.toFixed(2);
  console.log(JSON.stringify({
    n: times.length,
    failed,
    meanMs: +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(3),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    requestsPerSecond: +(times.length / elapsedS).toFixed(3),
    ...(firstFailure ? { firstFailure } : {}),
  }));
}
