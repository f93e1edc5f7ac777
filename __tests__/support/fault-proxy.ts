/**
 * A fault-injecting TCP proxy between the pool and the real server (not a mock:
 * every reply comes from the server). Used by the transaction tests, the chaos
 * tests and the ledger soak.
 *
 * Per COM_QUERY (the client-to-server stream is parsed into MySQL packets) a
 * test decides to forward the statement, hold it for a while, rewrite its text,
 * cut the connection before it reaches the server, let it reach the server and
 * lose the reply (the "outcome unknown" case), run something first (a `KILL`
 * from a side connection, say) and then forward it, hold the reply until
 * something has happened, or pass only the first bytes of the reply and cut the
 * connection half way through a result.
 *
 * Whole-link faults, switchable at any time:
 * - `latencyMs`: every chunk, in both directions, is delivered that much later (order kept);
 * - `blackHoleNew`: new connections are accepted and never answered (no handshake);
 * - `live()[i].drop()`: a connection is reset (both sides closed at once);
 * - `live()[i].blackHole()`: a connection goes silent in both directions (until dropped).
 *
 * The proxy learns each connection's server thread id from the handshake, so a
 * hook can `KILL` exactly the connection a statement runs on.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type QueryAction =
  | 'forward'
  /** Close both sides; the statement never reaches the server. */
  | 'cut'
  /** Send the statement to the server, close the client side at once, drop the server's reply. */
  | 'lose-reply'
  | { rewrite: string }
  | { delayMs: number }
  /** Run `before` (e.g. a KILL over a side connection), wait for it to settle, then forward the statement. */
  | { before: () => Promise<unknown> }
  /** Forward the statement; once its reply arrives, hold it, run `holdReply`, and deliver the reply when that settles. */
  | { holdReply: () => Promise<unknown> }
  /** Forward the statement; pass only the first `bytes` bytes of the reply, then close both sides. */
  | { cutReplyAfter: number };

/** One proxied connection, as a hook or a fault scheduler sees it. */
export interface ProxiedConnection {
  /** 0-based order of acceptance. */
  readonly index: number;
  /** The server's thread id (CONNECTION_ID()), once the handshake went through. */
  readonly threadId: number | undefined;
  /** True once either side is closed. */
  readonly closed: boolean;
  /** True when black-holed (by `blackHole()`, or accepted while `blackHoleNew` was on). */
  readonly blackHoled: boolean;
  /** Resets the connection: both sides closed at once. */
  drop(): void;
  /** Silences the connection: nothing passes in either direction any more (until `drop()` or close). */
  blackHole(): void;
}

export interface ProxyOptions {
  /** Delay before the n-th connection (0-based) is connected to the server: its handshake waits. */
  connectDelayMs?: (index: number) => number;
  /** Decides what happens to each COM_QUERY of the n-th connection. */
  onQuery?: (sql: string, index: number, connection: ProxiedConnection) => QueryAction;
  /** Keep every COM_QUERY in `queries` (default true; a long soak turns it off). */
  recordQueries?: boolean;
}

export interface Proxy {
  /** A mysql:// URL through the proxy, same user and database as `target`. */
  readonly url: string;
  /** The proxy's port. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** COM_QUIT packets seen: connections the client closed politely (the others were just hung up). */
  readonly quits: number;
  /** Every COM_QUERY seen, with its connection index, in order (if `recordQueries`). */
  readonly queries: Array<{ index: number; sql: string }>;
  /** Added to every chunk in both directions, from now on. 0 (default) forwards at once. */
  latencyMs: number;
  /** While true, new connections are accepted and never answered. */
  blackHoleNew: boolean;
  /** Connections still open (proxied or black-holed). */
  live(): ProxiedConnection[];
  close(): Promise<void>;
}

const COM_QUERY = 0x03;
const COM_QUIT = 0x01;

/**
 * Delivers chunks in order, each `latency()` ms after it was queued (one timer
 * per direction). `then(fn)` runs `fn` once everything queued before it was written.
 */
class Delayer {
  private readonly queue: Array<{ due: number; chunk?: Buffer; fn?: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private lastDue = 0;

  constructor(private readonly latency: () => number, private readonly write: (chunk: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.enqueue({ chunk });
  }

  then(fn: () => void): void {
    this.enqueue({ fn });
  }

  clear(): void {
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private enqueue(entry: { chunk?: Buffer; fn?: () => void }): void {
    const latency = Math.max(0, this.latency());
    if (latency === 0 && this.queue.length === 0) {
      this.run(entry);
      return;
    }
    const due = Math.max(Date.now() + latency, this.lastDue);
    this.lastDue = due;
    this.queue.push({ due, ...entry });
    this.arm();
  }

  private run(entry: { chunk?: Buffer; fn?: () => void }): void {
    if (entry.chunk) this.write(entry.chunk);
    entry.fn?.();
  }

  private arm(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.due <= now) this.run(this.queue.shift()!);
      this.arm();
    }, Math.max(0, this.queue[0]!.due - Date.now()));
  }
}

export async function startProxy(targetUrl: string, options: ProxyOptions = {}): Promise<Proxy> {
  const target = new URL(targetUrl);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = Number(target.port || 3306);
  const record = options.recordQueries ?? true;
  const sockets = new Set<Socket>();
  const live = new Set<ProxiedConnection>();
  const timers = new Set<NodeJS.Timeout>();
  const queries: Array<{ index: number; sql: string }> = [];
  let accepted = 0;
  let closing = false;

  const state = { latencyMs: 0, blackHoleNew: false, quits: 0 };

  const server: Server = createServer((client) => {
    const index = accepted++;
    sockets.add(client);
    client.on('error', () => undefined);
    client.pause();

    let upstream: Socket | undefined;
    let silenced = false;
    let threadId: number | undefined;
    const conn: ProxiedConnection = {
      index,
      get threadId() {
        return threadId;
      },
      get closed() {
        return client.destroyed;
      },
      get blackHoled() {
        return silenced;
      },
      drop: () => {
        client.destroy();
        upstream?.destroy();
      },
      blackHole: () => {
        silenced = true;
      },
    };
    live.add(conn);
    client.on('close', () => {
      sockets.delete(client);
      live.delete(conn);
    });

    if (state.blackHoleNew || closing) {
      // Accept, never answer: the client waits for a handshake that never comes.
      silenced = true;
      client.resume(); // read and discard whatever it sends
      return;
    }

    const delay = options.connectDelayMs?.(index) ?? 0;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (client.destroyed) return;
      const up = connect(port, host);
      upstream = up;
      sockets.add(up);
      const toClient = new Delayer(() => state.latencyMs, (chunk) => {
        if (!client.destroyed && !silenced) client.write(chunk);
      });
      const toServer = new Delayer(() => state.latencyMs, (chunk) => {
        if (!up.destroyed && !silenced) up.write(chunk);
      });

      // What happens to the server's reply to the statement last forwarded.
      let losingReply = false;
      let cutAfter: number | undefined;
      let held: { chunks: Buffer[]; until: () => Promise<unknown> } | undefined;
      /** Runs the hold's hook once the reply is in, then delivers the reply (and a hang-up that came meanwhile). */
      const release = (hold: { chunks: Buffer[]; until: () => Promise<unknown> }): void => {
        void hold.until().catch(() => undefined).then(() => {
          if (held === hold) held = undefined;
          for (const chunk of hold.chunks) toClient.push(chunk);
          if (up.destroyed) toClient.then(() => client.destroy());
        });
      };

      up.on('error', () => undefined);
      up.on('close', () => {
        sockets.delete(up);
        toServer.clear();
        if (silenced) return; // a black hole passes nothing, not even the hang-up
        // A held reply is delivered (then the hang-up) when its hold ends; a hold still
        // waiting for its reply never gets one.
        if (held === undefined || held.chunks.length === 0) toClient.then(() => client.destroy());
      });
      client.on('close', () => {
        toClient.clear();
        if (!losingReply) up.destroy();
      });
      let greeted = false;
      up.on('data', (chunk: Buffer) => {
        if (!greeted) {
          greeted = true;
          threadId = greetingThreadId(chunk);
        }
        if (silenced) return;
        if (losingReply) {
          up.destroy(); // the reply came back: drop it and hang up
          return;
        }
        if (held !== undefined) {
          held.chunks.push(chunk);
          if (held.chunks.length === 1) release(held); // the server has answered: run the hook now
          return;
        }
        if (cutAfter !== undefined) {
          if (chunk.length >= cutAfter) {
            if (cutAfter > 0) toClient.push(chunk.subarray(0, cutAfter));
            cutAfter = undefined;
            // Half a result reaches the client, then the link is gone.
            toClient.then(() => {
              client.destroy();
              up.destroy();
            });
            return;
          }
          cutAfter -= chunk.length;
        }
        toClient.push(chunk);
      });

      let pending: Buffer = Buffer.alloc(0);
      let chain: Promise<void> = Promise.resolve();
      const handle = async (packet: Buffer): Promise<void> => {
        if (client.destroyed) return;
        const sequence = packet[3];
        const payload = packet.subarray(4);
        // A command always starts a new sequence (0); handshake packets never do.
        if (sequence === 0 && payload[0] === COM_QUIT) state.quits++;
        if (sequence !== 0 || payload[0] !== COM_QUERY || !options.onQuery) {
          toServer.push(packet);
          return;
        }
        const sql = payload.subarray(1).toString('utf8');
        if (record) queries.push({ index, sql });
        const action = options.onQuery(sql, index, conn);
        if (action === 'forward') {
          toServer.push(packet);
        } else if (action === 'cut') {
          client.destroy();
          up.destroy();
        } else if (action === 'lose-reply') {
          losingReply = true;
          toServer.push(packet);
          client.destroy();
        } else if ('rewrite' in action) {
          const body = Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(action.rewrite, 'utf8')]);
          const header = Buffer.alloc(4);
          header.writeUIntLE(body.length, 0, 3);
          header[3] = 0;
          toServer.push(Buffer.concat([header, body]));
        } else if ('delayMs' in action) {
          await sleep(action.delayMs, timers);
          if (!client.destroyed) toServer.push(packet);
        } else if ('before' in action) {
          await action.before().catch(() => undefined);
          if (!client.destroyed) toServer.push(packet);
        } else if ('holdReply' in action) {
          held = { chunks: [], until: action.holdReply };
          toServer.push(packet);
        } else {
          cutAfter = Math.max(0, action.cutReplyAfter);
          toServer.push(packet);
        }
      };
      client.on('data', (chunk: Buffer) => {
        if (silenced) return;
        if (!options.onQuery) {
          // Nothing to decide: no parsing, but a whole COM_QUIT packet (5 bytes) is still counted.
          if (chunk.length === 5 && chunk.readUIntLE(0, 3) === 1 && chunk[3] === 0 && chunk[4] === COM_QUIT) state.quits++;
          toServer.push(chunk);
          return;
        }
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        while (pending.length >= 4) {
          const length = pending.readUIntLE(0, 3);
          if (pending.length < 4 + length) break;
          const packet = pending.subarray(0, 4 + length);
          pending = pending.subarray(4 + length);
          chain = chain.then(() => handle(packet));
        }
      });
      up.once('connect', () => client.resume());
    }, delay);
    timers.add(timer);
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
    port: address.port,
    get quits() {
      return state.quits;
    },
    get connections() {
      return accepted;
    },
    queries,
    get latencyMs() {
      return state.latencyMs;
    },
    set latencyMs(value: number) {
      state.latencyMs = value;
    },
    get blackHoleNew() {
      return state.blackHoleNew;
    },
    set blackHoleNew(value: boolean) {
      state.blackHoleNew = value;
    },
    live: () => [...live].filter((conn) => !conn.closed),
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The connection id in a protocol-10 handshake: after the version byte and the NUL-terminated version string. */
function greetingThreadId(chunk: Buffer): number | undefined {
  if (chunk.length < 5 || chunk[4] !== 10) return undefined;
  const end = chunk.indexOf(0, 5);
  if (end < 0 || end + 5 > chunk.length) return undefined;
  return chunk.readUInt32LE(end + 1);
}

function sleep(ms: number, timers: Set<NodeJS.Timeout>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      resolve();
    }, ms);
    timers.add(timer);
  });
}
