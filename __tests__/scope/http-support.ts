/** Helpers for the framework adapter tests: real HTTP servers on port 0, a side view of one table. */
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { sideConnection, uniqueTable } from '../support/db';

export { deferred, type Deferred } from '../support/async';


/** Starts `server` on an ephemeral port of 127.0.0.1; resolves its base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes `server` and every connection still open on it (keep-alive ones included). */
export async function close(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/** Polls `check` until it holds, for at most `timeoutMs`; fails with `what` otherwise. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads the first chunk of a streamed body; `rest()` reads the remainder. */
export async function firstChunk(response: Response): Promise<{ text: string; rest(): Promise<string> }> {
  if (!response.body) throw new Error('no body');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const first = await reader.read();
  return {
    text: first.done ? '' : decoder.decode(first.value),
    async rest() {
      let text = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += decoder.decode(value);
      }
    },
  };
}

/** One table of the test file, and a connection outside the pool to look at it. */
export class SideTable {
  readonly name: string;
  private constructor(
    readonly side: Connection,
    prefix: string,
  ) {
    this.name = uniqueTable(prefix);
  }

  static async create(prefix: string): Promise<SideTable> {
    const table = new SideTable(await sideConnection(), prefix);
    await table.side.query(`CREATE TABLE ${table.name} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    return table;
  }

  insert(id: number): string {
    return `INSERT INTO ${this.name} VALUES (${Number(id)})`;
  }

  /** The committed rows, as another client sees them. */
  async visible(): Promise<number[]> {
    const [rows] = await this.side.query<RowDataPacket[]>(`SELECT id FROM ${this.name} ORDER BY id`);
    return rows.map((row) => Number(row.id));
  }

  async clear(): Promise<void> {
    await this.side.query(`DELETE FROM ${this.name}`);
  }

  /** Kills a pool connection's thread, as a crash or a failover would. */
  async kill(threadId: number): Promise<void> {
    await this.side.query(`KILL ${Number(threadId)}`);
  }

  async drop(): Promise<void> {
    await this.side.query(`DROP TABLE IF EXISTS ${this.name}`);
    await this.side.end();
  }
}

/**
 * POSTs `body` as JSON with the headers first and the body a moment later, in
 * a separate packet: the server parses it in its socket's callbacks, outside
 * the async context the request started in.
 */
export function postSlowly(url: string, body: unknown, delayMs = 30): Promise<{ status: number; json: unknown }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.flushHeaders();
    setTimeout(() => req.end(payload), delayMs);
  });
}
