import net from 'node:net';

const URL_ = process.env.OMNITAG_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/** Whether something answers Redis's PING at `url` within a second. */
function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * The Redis the tests use (OMNITAG_TEST_REDIS_URL, default the local one), or undefined when
 * none answers, so Redis-backed tests skip on a machine without it. In CI (`.ci/run` starts
 * Redis) a missing Redis is an error, never a silent skip.
 */
export async function testRedisUrl(): Promise<string | undefined> {
  if (await answers(URL_)) return URL_;
  if (process.env.CI) throw new Error(`Redis does not answer at ${URL_}; CI must run the Redis-backed tests`);
  return undefined;
}
