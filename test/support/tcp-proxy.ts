import net from 'node:net';

/**
 * How the proxy treats traffic:
 * - `pass`: forwards both ways;
 * - `refuse`: stops listening (new connections: ECONNREFUSED) and resets the open ones, as a
 *   database server that went down;
 * - `reset`: resets the open connections and every new one as soon as it is accepted;
 * - `blackhole`: a network partition. Connections are accepted and kept, but nothing gets
 *   through either way, and nobody is told: no refusal, no reset, no close. When traffic passes
 *   again, what was held is delivered (TCP retransmits once the path heals), except on
 *   connections one end of which went away meanwhile: the other end is reset, as a host answers
 *   packets of a connection it no longer has. `heal({ resetHeld: true })` resets every
 *   connection of the outage instead, as a server that ended those sessions while unreachable.
 */
export type ProxyMode = 'pass' | 'refuse' | 'reset' | 'blackhole';

export interface TcpProxy {
  /** The proxy's loopback port. */
  readonly port: number;
  readonly mode: ProxyMode;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  setMode(mode: Exclude<ProxyMode, 'pass'>): Promise<void>;
  /** Back to `pass`; see ProxyMode for what becomes of the connections held by a blackhole. */
  heal(options?: { resetHeld?: boolean }): Promise<void>;
  stats(): { accepted: number; open: number; resets: number };
  close(): Promise<void>;
}

interface Side {
  readonly socket: net.Socket;
  /** Bytes read from this side and not yet delivered to the other. */
  held: Buffer[];
  ended: boolean;
  closed: boolean;
}

interface Pair {
  readonly client: Side;
  upstream: Side | undefined;
}

const side = (socket: net.Socket): Side => ({ socket, held: [], ended: false, closed: false });

/** A TCP proxy on 127.0.0.1 in front of a loopback `target`, whose traffic tests can cut in several ways. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  if (target.host !== '127.0.0.1' && target.host !== 'localhost') throw new Error(`the proxy forwards to loopback only, not ${target.host}`);
  let mode: ProxyMode = 'pass';
  const pairs = new Set<Pair>();
  const counters = { accepted: 0, resets: 0 };

  const reset = (s: Side | undefined) => {
    if (!s || s.socket.destroyed) return;
    counters.resets++;
    s.socket.resetAndDestroy();
  };
  const resetPair = (pair: Pair) => {
    reset(pair.client);
    reset(pair.upstream);
    pairs.delete(pair);
  };

  /** Delivers what `from` holds to `to` and passes on its end or close. */
  const flush = (from: Side, to: Side) => {
    for (const chunk of from.held.splice(0)) to.socket.write(chunk);
    if (from.closed) to.socket.destroy();
    else if (from.ended) to.socket.end();
  };

  const watch = (pair: Pair, from: Side, other: () => Side | undefined) => {
    from.socket.on('data', (chunk) => {
      const to = other();
      if (mode === 'blackhole' || !to) from.held.push(chunk);
      else to.socket.write(chunk);
    });
    from.socket.on('end', () => {
      from.ended = true;
      const to = other();
      if (mode !== 'blackhole' && to) to.socket.end();
    });
    from.socket.on('error', () => {}); // resets are what this proxy is for; 'close' follows
    from.socket.on('close', () => {
      from.closed = true;
      const to = other();
      if (mode === 'blackhole') return;
      // an orderly end was passed on already; anything else cuts the other side too
      if (to && !from.ended) to.socket.destroy();
      if (!to || to.closed || !from.ended) pairs.delete(pair);
    });
  };

  const connectUpstream = (pair: Pair) => {
    const upstream = side(net.connect(target.port, target.host));
    pair.upstream = upstream;
    watch(pair, upstream, () => pair.client);
    upstream.socket.once('connect', () => {
      if (mode === 'pass') flush(pair.client, upstream);
    });
  };

  const server = net.createServer((socket) => {
    counters.accepted++;
    if (mode === 'reset' || mode === 'refuse') {
      socket.on('error', () => {});
      counters.resets++;
      socket.resetAndDestroy();
      return;
    }
    socket.setNoDelay(true);
    const pair: Pair = { client: side(socket), upstream: undefined };
    pairs.add(pair);
    watch(pair, pair.client, () => pair.upstream);
    // in a blackhole the upstream connection is made when the path heals
    if (mode === 'pass') connectUpstream(pair);
  });
  server.on('error', () => {});

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));

  const port = await listen(0);

  const proxy: TcpProxy = {
    port,
    get mode() {
      return mode;
    },
    urlFor(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async setMode(next) {
      if (mode === 'blackhole' && next !== 'blackhole') await proxy.heal({ resetHeld: true });
      mode = next;
      if (next === 'refuse' || next === 'reset') for (const pair of [...pairs]) resetPair(pair);
      // after the resets: closing waits for the server's connections to end
      if (next === 'refuse') await stopListening();
    },
    async heal({ resetHeld = false } = {}) {
      const was = mode;
      mode = 'pass';
      if (was === 'refuse') await listen(port);
      if (was !== 'blackhole') return;
      for (const pair of [...pairs]) {
        const { client, upstream } = pair;
        const gone = client.closed || client.ended || (upstream !== undefined && (upstream.closed || upstream.ended));
        if (resetHeld || gone) {
          resetPair(pair);
        } else if (!upstream) {
          connectUpstream(pair);
        } else {
          flush(client, upstream);
          flush(upstream, client);
        }
      }
    },
    stats() {
      return { ...counters, open: pairs.size };
    },
    async close() {
      mode = 'reset';
      for (const pair of [...pairs]) resetPair(pair);
      await stopListening();
    },
  };
  return proxy;
}
