/**
 * rollback-pool/fastify over real HTTP: the request's connections are
 * committed in onSend before the reply leaves, rolled back for error statuses,
 * thrown errors and hang-ups, and a failed COMMIT becomes a 500.
 */
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPool, hasCode, ScopeCommitError, type Pool } from '../../src/index';
import { scope, type FastifyScopeOptions } from '../../src/scope/fastify';
import { mysqlUrl } from '../support/db';
import { deferred, firstChunk, postSlowly, SideTable, waitFor, type Deferred } from './http-support';

let table: SideTable;
let pool: Pool;

beforeAll(async () => {
  table = await SideTable.create('scope_fastify');
  pool = createPool({ uri: mysqlUrl(), connectionLimit: 6 });
});

afterAll(async () => {
  await pool.end();
  await table.drop();
});

/** The handler's work: two connections of its own plus pool.query, in one request. */
async function work(): Promise<{ threads: number[]; seenInside: number[] }> {
  const a = await pool.getConnection();
  const b = await pool.getConnection();
  const threads = [a.threadId, b.threadId];
  await a.query(table.insert(1));
  await b.query(table.insert(2));
  await pool.query(table.insert(3));
  a.release(); // b is still held when the reply is sent: the scope takes it over
  return { threads, seenInside: await table.visible() };
}

interface Probe {
  inserted: Deferred;
  gate: Deferred;
  done: Deferred<unknown>;
  threadId: number;
}

async function buildApp(probe: () => Probe, options?: FastifyScopeOptions): Promise<{ app: FastifyInstance; base: string }> {
  const app = Fastify();
  await app.register(scope(pool, options));
  app.post('/orders', async (request, reply) => {
    const { seenInside, threads } = await work();
    return reply.code(201).send({ seenInside, threads, body: request.body });
  });
  app.post('/bad-gateway', async (_request, reply) => {
    await work();
    return reply.code(502).send({ error: 'payment service unavailable' });
  });
  app.post('/throw', async () => {
    await work();
    throw new Error('boom');
  });
  app.get('/hang', async () => {
    const conn = await pool.getConnection();
    await conn.query(table.insert(1));
    await pool.query(table.insert(2));
    probe().inserted.resolve();
    await probe().gate.promise; // the client hangs up meanwhile
    const late = await conn.query(table.insert(3)).then(
      () => 'query ran',
      (error: unknown) => error,
    );
    probe().done.resolve(late);
    return {};
  });
  app.post('/killed', async () => {
    const conn = await pool.getConnection();
    await conn.query(table.insert(1));
    await pool.query(table.insert(2));
    await table.kill(conn.threadId); // its COMMIT will fail
    return { ok: true };
  });
  app.post('/decide', async () => {
    const conn = await pool.getConnection();
    probe().threadId = conn.threadId;
    await conn.query(table.insert(1));
    return { ok: true };
  });
  app.get('/stream', async (_request, reply) => {
    await pool.query(table.insert(1));
    const conn = await pool.getConnection();
    await conn.query(table.insert(2));
    const seen = await table.visible();
    const gate = probe().gate.promise;
    async function* chunks(): AsyncGenerator<string> {
      yield `first ${JSON.stringify(seen)}\n`;
      await gate;
      yield 'last\n';
    }
    return reply.type('text/plain').send(Readable.from(chunks()));
  });
  // An error handler that answers 200: the error still rolls back.
  app.register(async (child) => {
    child.setErrorHandler(async (_error, _request, reply) => reply.code(200).send({ handled: true }));
    child.post('/handled-error', async () => {
      await work();
      throw new Error('handled');
    });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { app, base: `http://127.0.0.1:${address.port}` };
}

const post = (url: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

let probe: Probe;
const errors: unknown[] = [];

beforeEach(() => {
  probe = { inserted: deferred(), gate: deferred(), done: deferred<unknown>(), threadId: 0 };
  errors.length = 0;
});

afterEach(async () => {
  probe.gate.resolve();
  await waitFor('every connection back in the pool', () => pool.stats().leased === 0);
  await table.clear();
});

describe('default decision', () => {
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    ({ app, base } = await buildApp(() => probe, { onError: (error) => errors.push(error) }));
  });

  afterAll(async () => {
    await app.close();
  });

  test('a 201 is committed (two connections and pool.query) before the response arrives', async () => {
    const response = await post(`${base}/orders`, { sku: 'A-1' });
    const committed = await table.visible(); // the moment the response is in
    const body = (await response.json()) as { seenInside: number[]; threads: number[]; body: unknown };
    expect(response.status).toBe(201);
    expect(committed).toEqual([1, 2, 3]);
    expect(body.seenInside).toEqual([]); // nothing was committed while the handler ran: it was in the scope
    expect(body.threads[0]).not.toBe(body.threads[1]);
    expect(body.body).toEqual({ sku: 'A-1' }); // parsed in stream callbacks: the scope was entered again after
  });

  test('a body that arrives after the headers is parsed outside the request\'s context: the handler is still in the scope', async () => {
    const response = await postSlowly(`${base}/orders`, { sku: 'B-2' });
    expect(response.status).toBe(201);
    expect(response.json).toMatchObject({ seenInside: [], body: { sku: 'B-2' } });
    expect(await table.visible()).toEqual([1, 2, 3]);
  });

  test('a 502 returned without throwing rolls back everything', async () => {
    const response = await post(`${base}/bad-gateway`);
    expect(response.status).toBe(502);
    expect(await response.json()).toEqual({ error: 'payment service unavailable' });
    expect(await table.visible()).toEqual([]);
  });

  test('a thrown error rolls back everything', async () => {
    const response = await post(`${base}/throw`);
    expect(response.status).toBe(500);
    expect(await table.visible()).toEqual([]);
  });

  test('a thrown error rolls back even when an error handler answers 200', async () => {
    const response = await post(`${base}/handled-error`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ handled: true });
    expect(await table.visible()).toEqual([]);
  });

  test('a client that hangs up before the response: rolled back at once, connections back in the pool', async () => {
    const abort = new AbortController();
    const request = fetch(`${base}/hang`, { signal: abort.signal }).catch((error: unknown) => error);
    await probe.inserted.promise; // the handler wrote and now waits
    abort.abort();
    expect(await request).toMatchObject({ name: 'AbortError' });
    await waitFor('the scope rolled back and gave its connections back', () => pool.stats().leased === 0);
    expect(await table.visible()).toEqual([]);
    probe.gate.resolve(); // the handler goes on: its connection was taken back from it
    expect(hasCode(await probe.done.promise, 'ERR_LEASE_RELEASED')).toBe(true);
    expect(await table.visible()).toEqual([]);
  });

  test('a COMMIT that fails becomes a 500 with a JSON error, and nothing is left behind', async () => {
    const response = await post(`${base}/killed`);
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toMatchObject({ statusCode: 500, code: 'ERR_SCOPE_COMMIT_FAILED' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ScopeCommitError);
    expect(await table.visible()).toEqual([]);
  });

  test('a streamed reply is committed before its first byte', async () => {
    const response = await fetch(`${base}/stream`);
    expect(response.status).toBe(200);
    const first = await firstChunk(response);
    expect(first.text).toBe('first []\n'); // produced while the scope was open: nothing committed then
    expect(await table.visible()).toEqual([1, 2]); // and committed before that chunk left
    probe.gate.resolve();
    expect(await first.rest()).toBe('last\n');
  });
});

describe('decide', () => {
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    ({ app, base } = await buildApp(() => probe, {
      decide: async (request, reply) => {
        if (request.headers['x-kill'] === 'yes') await table.kill(probe.threadId); // the COMMIT will fail
        if (request.headers['x-dry-run'] === 'yes') return 'rollback';
        return reply.statusCode < 400 ? 'commit' : 'rollback';
      },
      onError: (error) => errors.push(error),
    }));
  });

  afterAll(async () => {
    await app.close();
  });

  test('decide overrides the status: a 200 rolled back', async () => {
    const response = await post(`${base}/decide`, {}, { 'x-dry-run': 'yes' });
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([]);
  });

  test('decide says commit: committed', async () => {
    const response = await post(`${base}/decide`);
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([1]);
  });

  test('a COMMIT that fails after decide (the connection killed inside it) becomes a 500', async () => {
    const response = await post(`${base}/decide`, {}, { 'x-kill': 'yes' });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ code: 'ERR_SCOPE_COMMIT_FAILED' });
    expect(errors[0]).toBeInstanceOf(ScopeCommitError);
    expect(await table.visible()).toEqual([]);
  });
});
