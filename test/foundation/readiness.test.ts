import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql } from '../support/app.ts';
import { createServerDatabase, pgServerUrl, type TestDatabase } from '../support/database.ts';
import { startServerProcess, type ServerProcess } from '../support/server-process.ts';

/** A TCP relay to PostgreSQL that the test can cut and restore, as a network fault would. */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(!pgServerUrl)('readiness when PostgreSQL goes away (needs OMNITAG_TEST_PG_SERVER)', () => {
  let db: TestDatabase;
  let relay: Relay;
  let server: ServerProcess;

  beforeAll(async () => {
    db = await createServerDatabase();
    const target = new URL(db.url);
    relay = new Relay({ host: target.hostname, port: Number(target.port || 5432) });
    await relay.open();
    const viaRelay = new URL(db.url);
    viaRelay.host = `127.0.0.1:${relay.port}`;
    server = await startServerProcess({ DATABASE_URL: viaRelay.toString() });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await relay?.cut();
    await db?.drop();
  });

  it('reports not ready while the database is unreachable and recovers when it returns', async () => {
    const ready = () => fetch(`${server.url}/readyz`).then((r) => r.status);
    expect(await ready()).toBe(200);

    await relay.cut();
    expect(await until(ready, (s) => s === 503)).toBe(503);
    const health = await gql(server.url, '{ health { status database } }');
    expect(health.data?.health).toEqual({ status: 'DEGRADED', database: false });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    await relay.open();
    expect(await until(ready, (s) => s === 200)).toBe(200);
    expect((await gql(server.url, '{ health { status } }')).data?.health).toEqual({ status: 'OK' });
  });
});

describe('start-up without a database', () => {
  it('exits non-zero with a clear message when DATABASE_URL does not answer', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await startServerProcess({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/nothing` }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/exited \(1\)/);
    expect(err?.message).toContain(`127.0.0.1:${port}`);
  });
});
