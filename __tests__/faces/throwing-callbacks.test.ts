/**
 * A callback given to `pool.pool` or `lease.connection` is called outside any
 * promise chain (and outside mysql2's packet handling): if it throws, the
 * process sees an uncaught exception (it dies of it, as with mysql2), never an
 * unhandled rejection, and the pool face's own connection is back in the pool
 * by then. Observed from outside, in a child process (jest intercepts uncaught
 * exceptions itself): __tests__/faces/fixtures/throwing-callback.ts.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { mysqlUrl } from '../support/db';

const script = path.join(__dirname, 'fixtures', 'throwing-callback.ts');

interface Death {
  code: number | null;
  report: { origin: string; message: string; leased: number } | undefined;
  stderr: string;
}

function runCase(which: string): Promise<Death> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', script, which],
      { env: { ...process.env, MYSQL_URL: mysqlUrl() }, encoding: 'utf8', timeout: 15_000 },
      (error, _stdout, stderr) => {
        const line = stderr.split('\n').find((l) => l.startsWith('{"origin"'));
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, report: line ? JSON.parse(line) : undefined, stderr });
      },
    );
  });
}

// [case, connections the pool still has out when the callback throws: the user's own lease, or none]
const CASES: Array<[string, number]> = [
  ['pool.getConnection', 1],
  ['pool.query', 0],
  ['pool.query failing', 0],
  ['pool.execute', 0],
  ['pool.execute failing', 0],
  ['pool.end', 0],
  ['connection.query', 1],
  ['connection.query failing', 1],
  ['connection.execute', 1],
  ['connection.execute failing', 1],
  ['connection.beginTransaction', 1],
  ['connection.ping', 1],
];

let deaths: Map<string, Death>;
beforeAll(async () => {
  deaths = new Map();
  // Four children at a time (the machine is small).
  for (let i = 0; i < CASES.length; i += 4) {
    const batch = CASES.slice(i, i + 4);
    const results = await Promise.all(batch.map(([which]) => runCase(which)));
    batch.forEach(([which], j) => deaths.set(which, results[j]!));
  }
}, 60_000);

test.each(CASES)('a throwing %s callback: an uncaught exception (the process dies of it), not an unhandled rejection', (which, leased) => {
  const death = deaths.get(which)!;
  expect({ code: death.code, report: death.report }).toEqual({
    code: 1,
    report: { origin: 'uncaughtException', message: `thrown by the ${which} callback`, leased },
  });
  expect(death.stderr).toContain(`Error: thrown by the ${which} callback`);
});
