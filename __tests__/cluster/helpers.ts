/**
 * Helpers of the cluster tests (not a test file). Every node of a test
 * cluster points at the same real server through its own `NodeProxy`: a
 * plain TCP forwarder on a port of its own that learns each connection's
 * thread id from the server's handshake (so a test knows which node served a
 * connection) and can be taken down (the port refuses connections:
 * ECONNREFUSED, nothing listens) and brought back on the same port.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { RowDataPacket } from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { mysqlUrl } from '../support/db';

export interface NodeProxy {
  /** A mysql:// URL through this proxy (the test server's user and database). */
  readonly url: string;
  readonly port: number;
  /** Thread ids of every server connection made through this proxy. */
  readonly threadIds: ReadonlySet<number>;
  /** Connections accepted while up. */
  readonly accepted: number;
  /** Stops listening and cuts every connection: the port now refuses connections. */
  down(): Promise<void>;
  /** Listens again on the same port (a no-op when up). */
  up(): Promise<void>;
  /** Same as `down()`, for the end of a test. */
  close(): Promise<void>;
}

export async function startNodeProxy(): Promise<NodeProxy> {
  const target = new URL(mysqlUrl());
  const targetHost = target.hostname.replace(/^\[|\]$/g, '');
  const targetPort = Number(target.port || 3306);
  const sockets = new Set<Socket>();
  const threadIds = new Set<number>();
  let accepted = 0;
  let server: Server | undefined;
  let port = 0;

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      if (server !== undefined) {
        resolve(); // already up
        return;
      }
      const s = createServer((client) => {
        accepted++;
        const upstream = connect(targetPort, targetHost);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => undefined);
          socket.on('close', () => {
            sockets.delete(socket);
            client.destroy();
            upstream.destroy();
          });
        }
        let greeted = false;
        upstream.on('data', (chunk: Buffer) => {
          if (!greeted) {
            greeted = true;
            const id = greetingThreadId(chunk);
            if (id !== undefined) threadIds.add(id);
          }
        });
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        const address = s.address();
        if (address === null || typeof address === 'string') throw new Error('no TCP port');
        port = address.port;
        server = s;
        resolve();
      });
    });

  const down = (): Promise<void> =>
    new Promise((resolve) => {
      const s = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (s === undefined) resolve();
      else s.close(() => resolve());
    });

  await listen();
  const url = new URL(mysqlUrl());
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    port,
    threadIds,
    get accepted() {
      return accepted;
    },
    down,
    up: listen,
    close: down,
  };
}

/** The connection id in a protocol-10 handshake: after the version byte and the NUL-terminated version string. */
function greetingThreadId(chunk: Buffer): number | undefined {
  if (chunk.length < 5 || chunk[4] !== 10) return undefined;
  const end = chunk.indexOf(0, 5);
  if (end < 0 || end + 5 > chunk.length) return undefined;
  return chunk.readUInt32LE(end + 1);
}

/** A URL on which nothing listens (a port taken and released at once): connecting is refused. */
export async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const address = s.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP port');
  await new Promise<void>((resolve) => s.close(() => resolve()));
  const url = new URL(mysqlUrl());
  url.hostname = '127.0.0.1';
  url.port = String(address.port);
  return url.toString();
}

/** Which proxy's server connections include `threadId` (the node that served), by index; -1 if none. */
export function servedBy(proxies: readonly NodeProxy[], threadId: number): number {
  return proxies.findIndex((proxy) => proxy.threadIds.has(threadId));
}

/** Thread ids in `ids` that the server still has. */
export async function aliveThreads(side: Connection, ids: Iterable<number>): Promise<number[]> {
  const list = [...ids];
  if (list.length === 0) return [];
  const [rows] = await side.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (?)', [list]);
  return rows.map((row) => Number(row.ID)).sort((a, b) => a - b);
}

/** Polls `check` until it holds; rejects once `timeoutMs` passed (a generous bound, not a race). */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, intervalMs = 20): Promise<void> {
  const startedAt = Date.now();
  for (;;) {
    if (await check()) return;
    if (Date.now() - startedAt > timeoutMs) throw new Error(`condition still false after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Records a cluster's events in order, as `event:argument` strings (the error's code for `warn`). */
export function recordEvents(cluster: {
  on(event: 'warn', listener: (error: Error) => void): unknown;
  on(event: 'remove' | 'offline' | 'online', listener: (id: string) => void): unknown;
}): string[] {
  const events: string[] = [];
  cluster.on('warn', (error) => events.push(`warn:${(error as { code?: string }).code ?? error.message}`));
  for (const name of ['remove', 'offline', 'online'] as const) cluster.on(name, (id) => events.push(`${name}:${id}`));
  return events;
}
