/**
 * A small TCP proxy between the pool and the real server, to inject network faults
 * at exact points of the protocol (not a mock: every reply comes from the server).
 *
 * It parses the client-to-server stream into MySQL packets and lets a test decide,
 * per COM_QUERY, to forward it, hold it for a while, rewrite its text, cut the
 * connection before it reaches the server, or let it reach the server and cut the
 * connection before the reply gets back (the "outcome unknown" case). It can also
 * delay new connections (to make a `KILL QUERY` connection arrive late).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type QueryAction =
  | 'forward'
  /** Close both sides; the statement never reaches the server. */
  | 'cut'
  /** Send the statement to the server, close the client side at once, drop the server's reply. */
  | 'lose-reply'
  | { rewrite: string }
  | { delayMs: number };

export interface ProxyOptions {
  /** Delay before the n-th connection (0-based) is connected to the server: its handshake waits. */
  connectDelayMs?: (index: number) => number;
  /** Decides what happens to each COM_QUERY of the n-th connection. */
  onQuery?: (sql: string, index: number) => QueryAction;
}

export interface Proxy {
  /** A mysql:// URL through the proxy, same user and database as `target`. */
  readonly url: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Every COM_QUERY seen, with its connection index, in order. */
  readonly queries: Array<{ index: number; sql: string }>;
  close(): Promise<void>;
}

const COM_QUERY = 0x03;

export async function startProxy(targetUrl: string, options: ProxyOptions = {}): Promise<Proxy> {
  const target = new URL(targetUrl);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = Number(target.port || 3306);
  const sockets = new Set<Socket>();
  const queries: Array<{ index: number; sql: string }> = [];
  let accepted = 0;

  const server: Server = createServer((client) => {
    const index = accepted++;
    sockets.add(client);
    client.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const delay = options.connectDelayMs?.(index) ?? 0;
    setTimeout(() => {
      if (client.destroyed) return;
      const upstream = connect(port, host);
      let losingReply = false;
      sockets.add(upstream);
      upstream.on('error', () => undefined);
      upstream.on('close', () => {
        sockets.delete(upstream);
        client.destroy();
      });
      client.on('close', () => {
        if (!losingReply) upstream.destroy();
      });
      upstream.on('data', (chunk) => {
        if (losingReply) {
          upstream.destroy(); // the reply came back: drop it and hang up
          return;
        }
        if (!client.destroyed) client.write(chunk);
      });

      let pending = Buffer.alloc(0);
      let chain: Promise<void> = Promise.resolve();
      const handle = async (packet: Buffer): Promise<void> => {
        if (client.destroyed) return;
        const sequence = packet[3];
        const payload = packet.subarray(4);
        // A command always starts a new sequence (0); handshake packets never do.
        if (sequence !== 0 || payload[0] !== COM_QUERY || !options.onQuery) {
          upstream.write(packet);
          return;
        }
        const sql = payload.subarray(1).toString('utf8');
        queries.push({ index, sql });
        const action = options.onQuery(sql, index);
        if (action === 'forward') {
          upstream.write(packet);
        } else if (action === 'cut') {
          client.destroy();
          upstream.destroy();
        } else if (action === 'lose-reply') {
          losingReply = true;
          upstream.write(packet);
          client.destroy();
        } else if ('rewrite' in action) {
          const body = Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(action.rewrite, 'utf8')]);
          const header = Buffer.alloc(4);
          header.writeUIntLE(body.length, 0, 3);
          header[3] = 0;
          upstream.write(Buffer.concat([header, body]));
        } else {
          await new Promise((resolve) => setTimeout(resolve, action.delayMs));
          if (!client.destroyed) upstream.write(packet);
        }
      };
      client.on('data', (chunk) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 4) {
          const length = pending.readUIntLE(0, 3);
          if (pending.length < 4 + length) break;
          const packet = pending.subarray(0, 4 + length);
          pending = pending.subarray(4 + length);
          chain = chain.then(() => handle(packet));
        }
      });
      upstream.once('connect', () => client.resume());
    }, delay);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy did not get a TCP port');
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(address.port);

  return {
    url: url.toString(),
    get connections() {
      return accepted;
    },
    queries,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
