/**
 * Server discovery for the tests, `npm run demo` and `npm run bench`.
 *
 * Uses the server at MYSQL_URL (default: the local MariaDB on 3306). If nothing
 * listens there but a `mariadbd` binary is installed, starts a private throwaway
 * server instead, so a fresh machine with MariaDB installed (but not running) works.
 *
 * Importing this module has no side effects; `npx tsx scripts/server.ts` is a quick check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createConnection } from 'mysql2/promise';

export const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';

export interface DatabaseServer {
  url: string;
  /** True when this process started the server (and stop() will destroy it). */
  throwaway: boolean;
  stop(): Promise<void>;
}

/** A private MariaDB that can be crashed and restarted (for chaos tests). */
export interface ThrowawayServer extends DatabaseServer {
  readonly port: number;
  readonly dataDir: string;
  /** SIGKILL (a crash); the data directory is kept so start() recovers from it. */
  kill(): Promise<void>;
  /** Start again on the same port and data directory; no-op if running. */
  start(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 2_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** Hides the password of a connection URL so it can be logged. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    // Unparseable (e.g. a typo in MYSQL_URL): still hide whatever sits between "user:" and "@".
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

export async function ensureServer(): Promise<DatabaseServer> {
  const url = process.env.MYSQL_URL ?? DEFAULT_MYSQL_URL;
  const error = await probe(url);
  if (error === undefined) return { url, throwaway: false, stop: async () => {} };
  // A server that answers with an SQL error (bad password, unknown database) is a
  // configuration mistake; silently testing against a throwaway server would hide it.
  if (answeredWithSqlError(error)) {
    throw new Error(`The server at ${redactUrl(url)} answered but refused: ${error.message}. ` +
      'Fix MYSQL_URL (user, password, database) or the server\'s grants.');
  }
  if (findMariadbd() !== undefined) return startThrowawayMariadb();
  throw new Error(noServerHelp(`No server answers at ${redactUrl(url)} (${error.message}) and no mariadbd binary was found.`));
}

/** Options of a throwaway server. */
export interface ThrowawayOptions {
  /** More `mariadbd` flags (e.g. `--log-bin`, `--server-id=2` for a replication pair). */
  args?: string[];
  /** Run `CREATE DATABASE IF NOT EXISTS test` once it answers. Default true (a replica gets it from its primary). */
  createTestDatabase?: boolean;
}

export async function startThrowawayMariadb(options: ThrowawayOptions = {}): Promise<ThrowawayServer> {
  const mariadbd = findMariadbd();
  if (mariadbd === undefined) throw new Error(noServerHelp('No mariadbd binary was found.'));
  const installDb = findExecutable(['mariadb-install-db', 'mysql_install_db'], [dirname(mariadbd), '/usr/bin', '/usr/sbin']);
  if (installDb === undefined) throw new Error(`Found ${mariadbd} but not mariadb-install-db to initialise a data directory.`);

  const baseDir = await mkdtemp(join(tmpdir(), 'rp-mariadb-'));
  try {
    const dataDir = join(baseDir, 'data');
    // "normal" auth gives root an empty password over TCP (the default "socket" auth would not);
    // --skip-name-resolve makes the grants root@127.0.0.1/::1, matching the server flag below.
    await runToCompletion(installDb, ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal',
      '--skip-test-db', '--skip-name-resolve', ...userArgs()], join(baseDir, 'install.log'));
    const server = new Throwaway(mariadbd, baseDir, dataDir, await freePort(), options.args ?? [], options.createTestDatabase ?? true);
    await server.start();
    return server;
  } catch (error) {
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}

class Throwaway implements ThrowawayServer {
  readonly throwaway = true;
  readonly url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly binary: string,
    private readonly baseDir: string,
    readonly dataDir: string,
    readonly port: number,
    private readonly extraArgs: string[] = [],
    private readonly createTestDatabase = true,
  ) {
    this.url = `mysql://root@127.0.0.1:${port}/test`;
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error('This throwaway server was stopped; its data directory is gone.');
    if (this.child !== undefined) return;
    const log = join(this.baseDir, 'server.log');
    const fd = openSync(log, 'a');
    // Mirrors /etc/mysql/my.cnf of the shared server (utf8mb4, no name resolution) so tests behave alike.
    const child = spawn(this.binary, ['--no-defaults', `--datadir=${this.dataDir}`, `--port=${this.port}`,
      '--bind-address=127.0.0.1', `--socket=${join(this.baseDir, 'mysqld.sock')}`, `--pid-file=${join(this.baseDir, 'mysqld.pid')}`,
      '--skip-name-resolve', '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci', ...userArgs(), ...this.extraArgs],
    { stdio: ['ignore', fd, fd] });
    closeSync(fd); // the child holds its own copy
    // unref: a caller that forgets stop() must not hang; the exit hook still kills the child.
    child.unref();
    this.child = child;
    registerExitHook();
    unstopped.add(this);
    let gone = false;
    this.exited = new Promise<void>((resolve) => {
      const done = (): void => {
        gone = true;
        if (this.child === child) this.child = undefined;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done); // e.g. spawn failure; 'exit' may then never come
    });

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (gone) throw new Error(`mariadbd exited during startup; ${await tail(log)}`);
      try {
        // Connect without a database: on first start `test` does not exist yet.
        const conn = await createConnection({ uri: `mysql://root@127.0.0.1:${this.port}/`, connectTimeout: PROBE_TIMEOUT_MS });
        try {
          if (this.createTestDatabase) await conn.query('CREATE DATABASE IF NOT EXISTS test');
          else await conn.query('SELECT 1');
        } finally {
          await conn.end();
        }
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          await this.kill();
          throw new Error(`mariadbd did not answer within ${START_TIMEOUT_MS} ms (${String(error)}); ${await tail(log)}`);
        }
        await sleep(100);
      }
    }
  }

  async kill(): Promise<void> {
    this.child?.ref(); // keep Node alive until the exit event arrives (see unref in start())
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const child = this.child;
    if (child !== undefined) {
      child.ref(); // keep Node alive until the exit event arrives (see unref in start())
      child.kill('SIGTERM'); // clean shutdown avoids crash recovery noise in the log
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    await rm(this.baseDir, { recursive: true, force: true });
    unstopped.delete(this);
  }

  /** Synchronous last resort for process exit: nothing async runs any more. */
  abandon(): void {
    this.child?.kill('SIGKILL');
    // Retries cover files mariadbd is still writing while it dies.
    rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 5 });
  }
}

// Servers never stopped are killed and deleted when Node exits, so a caller that forgets
// stop() leaves no orphan mariadbd or temp directory behind.
const unstopped = new Set<Throwaway>();
let exitHookRegistered = false;
function registerExitHook(): void {
  if (exitHookRegistered) return;
  exitHookRegistered = true;
  process.once('exit', () => {
    for (const server of unstopped) server.abandon();
  });
}

/** Resolves to undefined when `SELECT 1` works, else to the error. */
async function probe(url: string): Promise<Error | undefined> {
  try {
    const conn = await createConnection({ uri: url, connectTimeout: PROBE_TIMEOUT_MS });
    try {
      await conn.query('SELECT 1');
    } finally {
      await conn.end();
    }
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** mysql2 sets sqlState only on errors the server sent, not on network failures. */
function answeredWithSqlError(error: Error): boolean {
  return typeof (error as { sqlState?: unknown }).sqlState === 'string';
}

function noServerHelp(reason: string): string {
  return `${reason} To get a server, either:\n` +
    '  - run `docker compose up -d`, then set MYSQL_URL=mysql://root@127.0.0.1:3307/test (MySQL 8.4)' +
    ' or MYSQL_URL=mysql://root@127.0.0.1:3308/test (MariaDB 11); or\n' +
    '  - install MariaDB (`apt-get install -y mariadb-server`); a throwaway server is then started automatically.';
}

/** The path of an installed `mariadbd`, or undefined. */
export function findMariadbd(): string | undefined {
  return findExecutable(['mariadbd'], ['/usr/sbin', '/usr/bin']);
}

export function findExecutable(names: string[], dirs: string[]): string | undefined {
  const searchDirs = [...dirs, ...(process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '')];
  for (const name of names) {
    for (const dir of searchDirs) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here; keep looking
      }
    }
  }
  return undefined;
}

/** mariadbd refuses to run as root unless told to. */
function userArgs(): string[] {
  return process.getuid?.() === 0 ? ['--user=root'] : [];
}

export async function runToCompletion(binary: string, args: string[], log: string): Promise<void> {
  const fd = openSync(log, 'a');
  const child = spawn(binary, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`${binary} failed (exit ${String(code)}); ${await tail(log, 40)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** A port the OS just handed out; another process could grab it first, but that is unlikely. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

export async function tail(log: string, lines = 15): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return `last lines of ${log}:\n${text.split('\n').slice(-lines).join('\n')}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// CLI: `npx tsx scripts/server.ts` prints the URL it found (or started, then stops it again).
if (require.main === module) {
  ensureServer().then(async (server) => {
    console.log(`${redactUrl(server.url)}${server.throwaway ? ' (throwaway server, stopping it again)' : ''}`);
    await server.stop();
  }).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
