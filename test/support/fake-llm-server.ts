/**
 * A local OpenAI-compatible Chat Completions server for tests (node:http on 127.0.0.1, port 0).
 * It answers like the real API (same JSON shapes, error bodies and headers) and can be told to
 * misbehave the ways real servers do: `n` unsupported (400) or ignored (one choice), 429 with
 * Retry-After, 5xx, never answering, malformed JSON, no choices, refusals, empty answers and
 * answers longer than CLIP's 77 tokens (any text, HTML included, through `contents`). Every
 * request is recorded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour =
  /** A normal answer; `contents` (one per choice) replaces the generated texts. */
  | { kind: 'answer'; contents?: (string | null)[] }
  /** An error status with the API's error body; `headers` e.g. { 'retry-after': '1' }. */
  | { kind: 'error'; status: number; message?: string; type?: string; param?: string | null; code?: string | null; headers?: Record<string, string> }
  /** Never answers (the client's timeout must end it). */
  | { kind: 'hang' }
  /** 200 with a body that is not valid JSON. */
  | { kind: 'malformed' }
  /** 200 with a well-formed completion whose `choices` is empty. */
  | { kind: 'no-choices' }
  /** Every choice declines ("I'm sorry, I can't…"). */
  | { kind: 'refuse' }
  /** Every choice is empty or white space. */
  | { kind: 'empty' }
  /** Every choice is far longer than 77 CLIP tokens. */
  | { kind: 'long' };

export interface FakeRequest {
  /** 0-based order of arrival. */
  index: number;
  receivedAt: number;
  model: string;
  n: number | undefined;
  temperature: number | undefined;
  maxTokens: number | undefined;
  system: string;
  prompt: string;
  /** The double-quoted name in the prompt, if any. */
  tag: string | undefined;
  authorization: string | undefined;
}

export interface FakeLlmOptions {
  /** 'multi' honours n; 'reject-n' answers 400 for n > 1; 'ignore-n' always gives one choice. */
  nSupport?: 'multi' | 'reject-n' | 'ignore-n';
  /** Picks the behaviour of a request; undefined → a normal answer. */
  behave?: (req: FakeRequest) => Behaviour | undefined;
}

export class FakeLlmServer {
  readonly requests: FakeRequest[] = [];
  nSupport: 'multi' | 'reject-n' | 'ignore-n';
  behave: ((req: FakeRequest) => Behaviour | undefined) | undefined;
  private server: http.Server;
  private port = 0;
  private answerCounter = 0;
  private gate: { open: boolean; held: (() => void)[]; from: number } = { open: true, held: [], from: Infinity };
  private readonly hanging = new Set<http.ServerResponse>();

  private constructor(options: FakeLlmOptions) {
    this.nSupport = options.nSupport ?? 'multi';
    this.behave = options.behave;
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  static async start(options: FakeLlmOptions = {}): Promise<FakeLlmServer> {
    const s = new FakeLlmServer(options);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.port = (s.server.address() as AddressInfo).port;
    return s;
  }

  /** Base URL for the openai SDK. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** From now on requests wait (after being recorded) until `release()` or `open()`. */
  hold(): void {
    this.gate.open = false;
  }

  /** Holds every request from the `index`-th on (0-based), as `hold()` does. */
  holdFrom(index: number): void {
    this.gate.from = index;
  }

  /** Lets new requests through again; the ones held so far stay held. */
  open(): void {
    this.gate.open = true;
    this.gate.from = Infinity;
  }

  /** Lets the held requests go on. */
  release(): void {
    const held = this.gate.held;
    this.gate.held = [];
    held.forEach((go) => go());
  }

  /** Back to how it started: answers everything, supports `n`, no requests recorded, nothing held. */
  reset(): void {
    this.behave = undefined;
    this.nSupport = 'multi';
    this.requests.length = 0;
    this.open();
    this.release();
  }

  get heldCount(): number {
    return this.gate.held.length;
  }

  /** Resolves once `count` requests have arrived in total. */
  async waitForRequests(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < count) {
      if (Date.now() > deadline) throw new Error(`fake LLM server: ${this.requests.length} of ${count} requests arrived`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.release();
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== 'POST' || !/\/chat\/completions$/.test(req.url ?? '')) {
      return send(res, 404, { error: { message: `Unknown request URL: ${req.method} ${req.url}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } });
    }
    let body: Record<string, any>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
    }
    const messages: { role: string; content: string }[] = Array.isArray(body.messages) ? body.messages : [];
    const prompt = messages.filter((m) => m.role === 'user').map((m) => m.content).join('\n');
    const record: FakeRequest = {
      index: this.requests.length,
      receivedAt: Date.now(),
      model: body.model,
      n: body.n,
      temperature: body.temperature,
      maxTokens: body.max_tokens ?? body.max_completion_tokens,
      system: messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n'),
      prompt,
      tag: /"([^"]*)"/.exec(prompt)?.[1],
      authorization: req.headers.authorization,
    };
    this.requests.push(record);
    if (!this.gate.open || record.index >= this.gate.from) await new Promise<void>((go) => this.gate.held.push(go));
    if (res.destroyed) return;

    const n = typeof body.n === 'number' ? body.n : 1;
    if (n > 1 && this.nSupport === 'reject-n') {
      return send(res, 400, { error: { message: "Unsupported value: 'n' must be 1 for this model.", type: 'invalid_request_error', param: 'n', code: 'unsupported_value' } });
    }
    const choices = this.nSupport === 'ignore-n' ? 1 : n;
    const behaviour = this.behave?.(record) ?? { kind: 'answer' };
    switch (behaviour.kind) {
      case 'error': {
        const type = behaviour.type ?? (behaviour.status === 429 ? 'rate_limit_exceeded' : behaviour.status >= 500 ? 'server_error' : 'invalid_request_error');
        return send(
          res,
          behaviour.status,
          { error: { message: behaviour.message ?? `fake error ${behaviour.status}`, type, param: behaviour.param ?? null, code: behaviour.code ?? null } },
          behaviour.headers,
        );
      }
      case 'hang':
        this.hanging.add(res);
        res.on('close', () => this.hanging.delete(res));
        return;
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"chatcmpl-broken","choices":[{"index":0,"message":{"role":"assistant","content":"A half');
        return;
      case 'no-choices':
        return send(res, 200, {
          id: `chatcmpl-fake${record.index}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: record.model,
          choices: [],
          usage: { prompt_tokens: 40, completion_tokens: 0, total_tokens: 40 },
        });
      default: {
        const contents = Array.from({ length: choices }, (_, i) => this.content(behaviour, record, i));
        return send(res, 200, {
          id: `chatcmpl-fake${record.index}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: record.model,
          choices: contents.map((content, index) => ({
            index,
            message: { role: 'assistant', content, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: behaviour.kind === 'long' ? 'length' : 'stop',
          })),
          usage: { prompt_tokens: 40, completion_tokens: 20 * choices, total_tokens: 40 + 20 * choices },
          system_fingerprint: 'fp_fake',
        });
      }
    }
  }

  private content(b: Behaviour, req: FakeRequest, i: number): string | null {
    const tag = req.tag ?? 'thing';
    const k = this.answerCounter++;
    switch (b.kind) {
      case 'answer':
        return b.contents ? (b.contents[i] ?? null) : `A ${tag} has a distinctive outline, texture and colour pattern number ${k}.`;
      case 'refuse':
        return i % 2 === 0 ? "I'm sorry, but I can't help with that request." : 'I cannot assist with that.';
      case 'empty':
        return i % 2 === 0 ? '' : '   \n ';
      case 'long':
        return `A ${tag} ${k} is ` + Array.from({ length: 60 }, (_, j) => `remarkably detailed feature ${j}`).join(', ') + '.';
      default:
        return null;
    }
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': 'req_fake', ...headers });
  res.end(text);
}
