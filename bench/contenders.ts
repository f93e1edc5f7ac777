/**
 * The pools under comparison, behind the small surface the workloads use
 * (mysql2/promise's and ours both fit it structurally, with no wrapper in the
 * hot path).
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createPool as createMysql2Pool } from 'mysql2/promise';
import * as mariadbCjs from 'mariadb';
import * as source from '../src/index';
import type { CleanupMode, PoolOptions } from '../src/index';

type OurModule = typeof source;

/** rollback-pool's pool, with its whole API (`begin()`, `transaction()`, `stats()`). */
export type OurPool = ReturnType<OurModule['createPool']>;

/** rollback-pool as benchmarked: the TypeScript source (through tsx), unless `useBuild()` was called. */
let ours: OurModule = source;
let ourCode = 'src/ (TypeScript through tsx)';

/** The rollback-pool module under benchmark (the source, or the build after `useBuild()`). */
export function ourLibrary(): OurModule {
  return ours;
}

/** Which rollback-pool code the contenders run, for the report. */
export function ourCodeLabel(): string {
  return ourCode;
}

/** Benchmarks the compiled package in `dir` (e.g. `dist/` after `npm run build`) instead of the source. */
export function useBuild(dir: string): void {
  const entry = resolve(dir, 'index.js');
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run \`npm run build\` first`);
  ours = require(entry) as OurModule;
  const fromRoot = relative(join(__dirname, '..'), resolve(dir));
  ourCode = `${fromRoot.startsWith('..') ? resolve(dir) : fromRoot}/ (compiled JavaScript)`;
}

export interface BenchConnection {
  execute(sql: string, values?: number[]): Promise<unknown>;
  query(sql: string): Promise<unknown>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  release(): void;
}

export interface BenchPool {
  execute(sql: string, values?: number[]): Promise<unknown>;
  getConnection(): Promise<BenchConnection>;
  end(): Promise<void>;
}

export type ContenderId = 'ours' | 'mysql2' | 'mysql2Reset' | 'mariadb';

export interface Contender {
  id: ContenderId;
  label: string;
  pool: BenchPool;
}

export const CONTENDER_LABELS: Record<ContenderId, string> = {
  ours: 'rollback-pool',
  mysql2: 'mysql2 (default)',
  mysql2Reset: 'mysql2 resetOnRelease',
  mariadb: `mariadb ${mariadbVersion()} pool`,
};

export function createContender(id: ContenderId, url: string, connectionLimit: number): Contender {
  let pool: BenchPool;
  if (id === 'ours') pool = createOurPool(url, connectionLimit);
  else if (id === 'mariadb') pool = createMariadbPool(url, connectionLimit);
  else pool = createMysql2Pool({ uri: url, connectionLimit, resetOnRelease: id === 'mysql2Reset' });
  return { id, label: CONTENDER_LABELS[id], pool };
}

/**
 * The `mariadb` connector's pool, in its defaults (which include a ROLLBACK at
 * release when the server says a transaction is open). Its `execute` resolves
 * with the rows rather than `[rows, fields]`; the workloads ignore the result.
 */
export function createMariadbPool(url: string, connectionLimit: number): BenchPool {
  const mariadb = mariadbModule ?? mariadbCjs;
  const { hostname, port, username, password, pathname } = new URL(url);
  return mariadb.createPool({
    host: hostname || '127.0.0.1',
    port: Number(port || 3306),
    user: decodeURIComponent(username) || 'root',
    password: decodeURIComponent(password),
    database: pathname.slice(1) || undefined,
    connectionLimit,
  }) as unknown as BenchPool;
}

export function mariadbVersion(): string {
  return (mariadbCjs as unknown as { version: string }).version;
}

let mariadbModule: typeof mariadbCjs | undefined;

/**
 * Loads the connector's ES module build (its lib/ files, as published) instead
 * of the minified CommonJS bundle `require` gets: the same code, but a CPU
 * profile can then tell its pool from its protocol code by file. Call once
 * before creating mariadb pools.
 */
export async function loadMariadb(): Promise<void> {
  mariadbModule ??= (await import('mariadb')) as unknown as typeof mariadbCjs;
}

/** One of our pools, by default in the default cleanup mode. */
export function createOurPool(url: string, connectionLimit: number, cleanup?: CleanupMode, options: PoolOptions = {}): OurPool {
  return ours.createPool(cleanup === undefined ? { uri: url, connectionLimit, ...options } : { uri: url, connectionLimit, cleanup, ...options });
}
