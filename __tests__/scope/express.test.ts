/**
 * rollback-pool/express over real HTTP, with Express 5 and Express 4: the
 * request's connections are committed before the response leaves, rolled back
 * for error statuses, thrown errors and hang-ups, and a failed COMMIT becomes
 * a 500.
 */
import { createServer, type Server } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import express5 from 'express';
import { createPool, hasCode, ScopeCommitError, type Pool } from '../../src/index';
import { scope, type ExpressScopeOptions } from '../../src/scope/express';
import { mysqlUrl } from '../support/db';
import { close, deferred, firstChunk, listen, postSlowly, SideTable, waitFor, type Deferred } from './http-support';

// Express 4 is installed under an alias; its API is the part of Express 5's typed here.
const express4 = require('express4') as typeof express5;

let table: SideTable;
let pool: Pool;

beforeAll(async () => {
  table = await SideTable.create('scope_express');
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
  a.release(); // b is still held when the response starts: the scope takes it over
  return { threads, seenInside: await table.visible() };
}

/** An async handler that works with both Express 4 (no promise support) and 5. */
function handler(fn: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    fn(req, res).catch(next);
  };
}

interface Probe {
  inserted: Deferred;
  gate: Deferred;
  done: Deferred<unknown>;
  threadId: number;
}

function buildApp(express: typeof express5, probe: () => Probe, options?: ExpressScopeOptions<Request, Response>): Server {
  const app = express();
  app.use(scope(pool, options));
  app.use(express.json()); // the body is read in stream callbacks: the scope must survive them
  app.post(
    '/orders',
    handler(async (req, res) => {
      const { seenInside, threads } = await work();
      res.status(201).json({ seenInside, threads, body: req.body as unknown });
    }),
  );
  app.post(
    '/bad-gateway',
    handler(async (_req, res) => {
      await work();
      res.status(502).json({ error: 'payment service unavailable' });
    }),
  );
  app.post(
    '/throw',
    handler(async () => {
      await work();
      throw new Error('boom');
    }),
  );
  app.get(
    '/hang',
    handler(async (_req, res) => {
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
      res.json({});
    }),
  );
  app.post(
    '/killed',
    handler(async (_req, res) => {
      const conn = await pool.getConnection();
      await conn.query(table.insert(1));
      await pool.query(table.insert(2));
      await table.kill(conn.threadId); // its COMMIT will fail
      res.json({ ok: true });
    }),
  );
  app.post(
    '/decide',
    handler(async (_req, res) => {
      const conn = await pool.getConnection();
      probe().threadId = conn.threadId;
      await conn.query(table.insert(1));
      res.json({ ok: true });
    }),
  );
  app.post(
    '/send-then-throw',
    handler(async (_req, res) => {
      await pool.query(table.insert(1));
      res.status(201).json({ ok: true }); // held while the scope commits...
      throw new Error('after the response'); // ...so the error handler's 500 finds the headers "not sent"
    }),
  );
  app.get(
    '/stream',
    handler(async (_req, res) => {
      await pool.query(table.insert(1));
      const conn = await pool.getConnection();
      await conn.query(table.insert(2));
      res.status(200).type('text/plain');
      res.write(`first ${JSON.stringify(await table.visible())}\n`); // held until the scope committed
      await probe().gate.promise;
      res.write('second\n');
      res.end('last\n');
    }),
  );
  return createServer(app);
}

const post = (url: string, body: unknown = {}): Promise<globalThis.Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe.each([
  ['Express 5', express5],
  ['Express 4', express4],
])('%s', (_name, express) => {
  let server: Server;
  let base: string;
  let probe: Probe;
  const errors: unknown[] = [];

  beforeAll(async () => {
    server = buildApp(express, () => probe, { onError: (error) => errors.push(error) });
    base = await listen(server);
  });

  afterAll(async () => {
    await close(server);
  });

  beforeEach(() => {
    probe = { inserted: deferred(), gate: deferred(), done: deferred<unknown>(), threadId: 0 };
    errors.length = 0;
  });

  afterEach(async () => {
    probe.gate.resolve();
    await waitFor('every connection back in the pool', () => pool.stats().leased === 0);
    await table.clear();
  });

  test('a 201 is committed (two connections and pool.query) before the response arrives', async () => {
    const response = await post(`${base}/orders`, { sku: 'A-1' });
    const committed = await table.visible(); // the moment the response is in
    const body = (await response.json()) as { seenInside: number[]; threads: number[]; body: unknown };
    expect(response.status).toBe(201);
    expect(committed).toEqual([1, 2, 3]);
    expect(body.seenInside).toEqual([]); // nothing was committed while the handler ran: it was in the scope
    expect(body.threads[0]).not.toBe(body.threads[1]);
    expect(body.body).toEqual({ sku: 'A-1' }); // the body parser kept the scope's context
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

  test('an error after the response was sent: the response goes out as it was, committed, and the 500 is dropped', async () => {
    const response = await post(`${base}/send-then-throw`);
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ ok: true });
    expect(await table.visible()).toEqual([1]);
  });

  test('a streamed response is committed before its first byte', async () => {
    const response = await fetch(`${base}/stream`);
    expect(response.status).toBe(200);
    const first = await firstChunk(response);
    expect(first.text).toBe('first []\n'); // written while the scope was open: nothing committed then
    expect(await table.visible()).toEqual([1, 2]); // and committed before that chunk left
    probe.gate.resolve();
    expect(await first.rest()).toBe('second\nlast\n');
  });
});

describe('decide', () => {
  let server: Server;
  let base: string;
  let probe: Probe;
  const errors: unknown[] = [];

  beforeAll(async () => {
    server = buildApp(express5, () => probe, {
      decide: async (req, res) => {
        if (req.get('x-kill') === 'yes') await table.kill(probe.threadId); // the COMMIT will fail
        if (req.get('x-dry-run') === 'yes') return 'rollback';
        return res.statusCode < 400 ? 'commit' : 'rollback';
      },
      onError: (error) => errors.push(error),
    });
    base = await listen(server);
  });

  afterAll(async () => {
    await close(server);
  });

  beforeEach(() => {
    probe = { inserted: deferred(), gate: deferred(), done: deferred<unknown>(), threadId: 0 };
    errors.length = 0;
  });

  afterEach(async () => {
    await waitFor('every connection back in the pool', () => pool.stats().leased === 0);
    await table.clear();
  });

  test('decide overrides the status: a 200 rolled back', async () => {
    const response = await fetch(`${base}/decide`, { method: 'POST', headers: { 'x-dry-run': 'yes' } });
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([]);
  });

  test('decide says commit: committed', async () => {
    const response = await fetch(`${base}/decide`, { method: 'POST' });
    expect(response.status).toBe(200);
    expect(await table.visible()).toEqual([1]);
  });

  test('a COMMIT that fails after decide (the connection killed inside it) becomes a 500', async () => {
    const response = await fetch(`${base}/decide`, { method: 'POST', headers: { 'x-kill': 'yes' } });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ code: 'ERR_SCOPE_COMMIT_FAILED' });
    expect(errors[0]).toBeInstanceOf(ScopeCommitError);
    expect(await table.visible()).toEqual([]);
  });
});
