/**
 * `npm run demo`: the bug rollback-pool exists for, side by side.
 *
 * The same story runs against mysql2's own promise pool and against ours, each
 * with connectionLimit 1 (so every request gets the same connection) and its
 * own table: request A begins a transaction, inserts a row and releases the
 * connection without COMMIT; request B does an autocommit INSERT; request C
 * runs and commits a transaction of its own. A separate connection observes.
 * Then request D sets a session variable and request E reads it.
 */
import { randomBytes } from 'node:crypto';
import { createConnection, createPool as createMysql2Pool, type RowDataPacket } from 'mysql2/promise';
import { ensureServer, redactUrl, type DatabaseServer } from '../scripts/server';
import { createPool } from '../src/index';
import { createStoryTable, runSessionVariableStory, runStory, type StoryResult } from './story';

/** How long the lock measurement waits for mysql2, which never frees it by itself. */
const LOCK_CAP_MS = 3_000;

async function main(): Promise<void> {
  const server = await ensureServer();
  const cleanups: Array<() => Promise<void>> = [() => server.stop()];
  try {
    await run(server, cleanups);
  } finally {
    // Pools first (closing their connections rolls back what they hold), then tables, then the server.
    for (const cleanup of cleanups.reverse()) await cleanup().catch(warn);
  }
}

async function run(server: DatabaseServer, cleanups: Array<() => Promise<void>>): Promise<void> {
  const side = await createConnection({ uri: server.url, connectTimeout: 5_000 });
  cleanups.push(() => side.end());
  await side.query('SET SESSION innodb_lock_wait_timeout = 1');
  const [versionRows] = await side.query<VersionRow[]>('SELECT VERSION() AS v');
  const version = String(versionRows[0]?.v ?? 'unknown version');

  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const tables = { mysql2: `rp_demo_mysql2_${suffix}`, ours: `rp_demo_ours_${suffix}` };
  for (const table of Object.values(tables)) {
    await createStoryTable(side, table);
    cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${table}`).then(noValue));
  }

  console.log(
    `rollback-pool demo on ${redactUrl(server.url)} (${version}${server.throwaway ? ', throwaway server' : ''}), connectionLimit 1:\n` +
      'request A begins a transaction, inserts a row and releases without COMMIT; then request B does an\n' +
      'autocommit INSERT and request C a committed transaction, on the same pooled connection.\n',
  );

  const theirs = createMysql2Pool({ uri: server.url, connectionLimit: 1 });
  cleanups.push(() => theirs.end());
  const mysql2Result = await runStory(theirs, side, tables.mysql2, LOCK_CAP_MS);
  const mysql2ActingUser = await runSessionVariableStory(theirs);

  const ours = createPool({ uri: server.url, connectionLimit: 1, resetOnRelease: 'whenDirty' });
  cleanups.push(() => ours.end());
  let rollbacks = 0;
  ours.on('rollback', () => rollbacks++);
  ours.on('rollbackError', (event) => console.error(`rollbackError: ${event.error.message}`));
  const ourResult = await runStory(ours, side, tables.ours, LOCK_CAP_MS);
  if (ours.stats().rolledBack !== rollbacks) throw new Error('rollback events and stats() disagree');
  const ourActingUser = await runSessionVariableStory(ours);

  printTable([
    ['', 'mysql2 Pool', "rollback-pool (resetOnRelease: 'whenDirty')"],
    ['(b) writes lost: B\'s INSERT not visible', lostCell(mysql2Result), lostCell(ourResult)],
    ['(c) ghost rows: never committed, now permanent', String(mysql2Result.ghostRows), String(ourResult.ghostRows)],
    ['(d) A\'s row lock held after its release', lockCell(mysql2Result), lockCell(ourResult)],
    ['(e) rollbacks run by the pool', '0', String(rollbacks)],
    ['(f) E sees D\'s @current_user_id (acts as D)', actingUserCell(mysql2ActingUser), actingUserCell(ourActingUser)],
    ['    rows in the table at the end (by owner)', rowsCell(mysql2Result), rowsCell(ourResult)],
  ]);
  console.log(
    '\nmysql2 hands A\'s connection on with its transaction open: B\'s INSERT silently joins it, the row lock stays\n' +
      'held until the connection is reused, and C\'s START TRANSACTION implicitly commits A\'s abandoned row.\n' +
      'rollback-pool flags the connection on release and rolls it back (in the background) before it serves anyone else.\n' +
      'Request D then sets @current_user_id = 7 and releases; request E, on the same connection, reads it: on mysql2 it\n' +
      "acts as D. With resetOnRelease: 'whenDirty' the pool resets exactly the sessions whose state changed (D's), in the\n" +
      'background, and clean ones (A, B, C) cost nothing.',
  );
}

function actingUserCell(value: unknown): string {
  return value === null ? 'no (NULL)' : `yes (${String(value)})`;
}

function lostCell(result: StoryResult): string {
  return result.bLost ? '1 of 1 (joined A\'s open transaction)' : '0 of 1';
}

function lockCell(result: StoryResult): string {
  if (result.lockHeldMs === undefined) return `> ${LOCK_CAP_MS / 1000} s (held until the connection is reused)`;
  return `${result.lockHeldMs.toFixed(1)} ms`;
}

function rowsCell(result: StoryResult): string {
  return result.finalRows.length === 0 ? '(none)' : result.finalRows.join(', ');
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]): string => row.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ').trimEnd();
  const [header, ...body] = rows;
  console.log(line(header!));
  console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
  for (const row of body) console.log(line(row));
}

function warn(error: unknown): void {
  console.error(`cleanup: ${error instanceof Error ? error.message : String(error)}`);
}

function noValue(): void {
  return undefined;
}

interface VersionRow extends RowDataPacket {
  v: string;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
