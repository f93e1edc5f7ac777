/**
 * rollback-pool/koa over real HTTP: the request's connections are committed
 * when the chain resolves, before Koa writes the response, rolled back for
 * error statuses, thrown errors and hang-ups, and a failed COMMIT becomes a 500.
 */
import { createServer, type Server } from 'node:http';
import { Readable } from 'node:stream';
import Koa from 'koa';
import { createPool, hasCode, ScopeCommitError, type Pool } from '../../src/index';
import { scope, type KoaScopeOptions } from '../../src/scope/koa';
import { mysqlUrl } from '../support/db';
import { close, deferred, firstChunk, listen, SideTable, waitFor, type Deferred } from './http-support';

let table: SideTable;
let pool: Pool;

beforeAll(async () => {
  table = await SideTable.create('scope_koa');
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
  a.release(); // b is still held when the chain resolves: the scope takes it over
  return { threads, seenInside: await table.visible() };
}

interface Probe {
  inserted: Deferred;
  gate: Deferred;
  done: Deferred<unknown>;
  threadId: number;
}

function buildApp(probe: () => Probe, options?: KoaScopeOptions<Koa.Context>): Server {
  const app = new Koa();
  app.silent = true; // thrown errors are expected here
  app.use(scope(pool, options));
  app.use(async (ctx) => {
    switch (`${ctx.method} ${ctx.path}`) {
      case 'POST /orders': {
        const { seenInside, threads } = await work();
        ctx.status = 201;
        ctx.body = { seenInside, threads };
        return;
      }
      case 'POST /bad-gateway':
        await work();
        ctx.status = 502;
        ctx.body = { error: 'payment service unavailable' };
        return;
      case 'POST /throw':
        await work();
        throw new Error('boom');
      case 'GET /hang': {
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
        ctx.body = {};
        return;
      }
      case 'POST /killed': {
        const conn = await pool.getConnection();
        await conn.query(table.insert(1));
        await pool.query(table.insert(2));
        await table.kill(conn.threadId); // its COMMIT will fail
        ctx.set('x-order', '42'); // set for the response that will not go out
        ctx.body = { ok: true };
        return;
      }
      case 'POST /decide': {
        const conn = await pool.getConnection();
        probe().threadId = conn.threadId;
        await conn.query(table.insert(1));
        ctx.body = { ok: true };
        return;
      }
      case 'GET /stream': {
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
        ctx.type = 'text/plain';
        ctx.body = Readable.from(chunks()); // Koa pipes it after the chain resolved
        return;
      }
      default:
        ctx.status = 404;
    }
  });
  return createServer(app.callback());
}

const post = (url: string, headers: Record<string, string> = {}): Promise<Response> => fetch(url, { method: 'POST', headers });

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
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = buildApp(() => probe, { onError: (error) => errors.push(error) });
    base = await listen(server);
  });

  afterAll(async () => {
    await close(server);
  });

  test('a 201 is committed (two connections and pool.query) before the response arrives', async () => {
    const response = await post(`${base}/orders`);
    const committed = await table.visible(); // the moment the response is in
    const body = (await response.json()) as { seenInside: number[]; threads: number[] };
    expect(response.status).toBe(201);
    expect(committed).toEqual([1, 2, 3]);
    expect(body.seenInside).toEqual([]); // nothing was committed while the handler ran: it was in the scope
    expect(body.threads[0]).not.toBe(body.threads[1]);
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
    expect(response.headers.get('x-order')).toBeNull(); // the failed response's headers went with it
    expect(await response.json()).toMatchObject({ statusCode: 500, code: 'ERR_SCOPE_COMMIT_FAILED' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ScopeCommitError);
    expect(await table.visible()).toEqual([]);
  });

  test('a Readable body is committed before its first byte', async () => {
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
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = buildApp(() => probe, {
      decide: async (_req, res, ctx) => {
        if (ctx.get('x-kill') === 'yes') await table.kill(probe.threadId); // the COMMIT will fail
        if (ctx.get('x-dry-run') === 'yes') return 'rollback';
        return res.status < 400 ? 'commit' : 'rollback';
      },
      onError: (error) => errors.push(error),
    });
    base = await listen(server);
  });

  afterAll(async () => {
    await close(server);
  });

  test('decide overrides the status: a 200 rolled back', async () => {
    const response = await post(`${base}/decide`, { 'x-dry-run': 'yes' });
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([]);
  });

  test('decide says commit: committed', async () => {
    const response = await post(`${base}/decide`);
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([1]);
  });

  test('a COMMIT that fails after decide (the connection killed inside it) becomes a 500', async () => {
    const response = await post(`${base}/decide`, { 'x-kill': 'yes' });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ code: 'ERR_SCOPE_COMMIT_FAILED' });
    expect(errors[0]).toBeInstanceOf(ScopeCommitError);
    expect(await table.visible()).toEqual([]);
  });
});
