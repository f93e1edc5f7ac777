/**
 * What a healthy Galera cluster throws, and what rollback-pool makes of it:
 *
 * - a write-write conflict across nodes: the loser gets 1213 at COMMIT (its
 *   write set fails certification: rolled back everywhere). Its handle ends
 *   `endedByServer`, as after a deadlock on a statement, with no ROLLBACK
 *   sent; `transaction(fn, { retries })` re-runs it to success;
 * - autocommit statements on a hot row from two nodes: some get 1213 (after
 *   Galera's own `wsrep_retry_autocommit`); with `retries` each is sent again
 *   (the server rolled it back: nothing of it is left) and every one lands;
 * - a scope whose COMMIT the server rolled back lists that connection under
 *   `rolledBack`;
 * - `twoPhase` is refused (ERR_TWO_PHASE_UNSUPPORTED) before any XA
 *   statement reaches the server, on the cluster and on a plain Pool.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, type ScopeCommitError } from '../../src/index';
import { rejection } from '../support/async';
import { describeGalera, falseAlarms, type GaleraEnv } from './support';

/** A global status counter of one node (its own statements, and this file's, are the only ones there). */
async function counter(conn: Connection, name: string): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>('SHOW GLOBAL STATUS WHERE Variable_name = ?', [name]);
  return Number(rows[0]?.['Value'] ?? 0);
}

async function value(conn: Connection, table: string, id: number): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = ?`, [id]);
  return Number(rows[0]?.['v']);
}

describeGalera('Galera: conflicts, retries, two-phase', (env: GaleraEnv) => {
  const table = 'galera_hot';
  let g1: Connection;
  let g2: Connection;

  beforeAll(async () => {
    g1 = await env.direct(0);
    g2 = await env.direct(1);
    await g1.query(`CREATE TABLE ${table} (id INT NOT NULL PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
    await g1.query(`INSERT INTO ${table} (id, v) VALUES (1, 0), (2, 0), (3, 0), (4, 0)`);
  });

  test('a conflict across nodes: 1213 at COMMIT ends the handle endedByServer, no ROLLBACK sent; retries re-run it to success', async () => {
    const cluster = env.poolCluster();
    const onG1 = cluster.of('g1');
    const onG2 = cluster.of('g2');
    const a = await onG1.begin();
    const b = await onG2.begin();
    await a.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
    await b.query(`UPDATE ${table} SET v = v + 10 WHERE id = 1`);
    await a.commit();
    const rollbacksBefore = await counter(g2, 'Com_rollback');
    const error = await rejection(b.commit());
    expect(error.errno).toBe(1213);
    expect(b.state).toBe('endedByServer');
    expect(await counter(g2, 'Com_rollback')).toBe(rollbacksBefore); // nothing more was sent for it
    expect(await value(g1, table, 1)).toBe(1);

    // The same conflict, many times over, with retries: every transaction lands exactly once.
    const n = 40;
    const results = await Promise.allSettled(
      Array.from({ length: n }, () =>
        cluster.transaction(async (tx) => {
          await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
        }, { retries: 20 }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(await value(g1, table, 1)).toBe(1 + n);
    const stats = cluster.stats();
    const retries = Object.values(stats).reduce((sum, node) => sum + node.retries, 0);
    process.stdout.write(`[conflicts] ${n} transactions on one row over 3 nodes: ${retries} retries, all committed\n`);
    expect(falseAlarms(cluster)).toEqual({ abandoned: 0, rollbackFailures: 0 });
  });

  test('autocommit UPDATEs of a hot row from two nodes: without retries some fail with 1213; with retries every one lands', async () => {
    const cluster = env.poolCluster();
    const run = async (retries: number, id: number): Promise<{ ok: number; deadlocks: number }> => {
      let ok = 0;
      let deadlocks = 0;
      const worker = async (node: 'g1' | 'g2'): Promise<void> => {
        for (let i = 0; i < 60; i++) {
          try {
            await cluster.of(node).query(`UPDATE ${table} SET v = v + 1 WHERE id = ?`, [id], { retries });
            ok++;
          } catch (error) {
            if ((error as { errno?: number }).errno !== 1213) throw error;
            deadlocks++;
          }
        }
      };
      await Promise.all([worker('g1'), worker('g1'), worker('g2'), worker('g2')]);
      return { ok, deadlocks };
    };
    const plain = await run(0, 2);
    expect(await value(g1, table, 2)).toBe(plain.ok); // each failed one left nothing behind
    const retried = await run(50, 3);
    expect(retried).toEqual({ ok: 240, deadlocks: 0 });
    expect(await value(g1, table, 3)).toBe(240); // and each retried one landed exactly once
    const resent = Object.values(cluster.stats()).reduce((sum, node) => sum + node.retries, 0);
    process.stdout.write(`[conflicts] 240 autocommit UPDATEs of one row from 2 nodes: ${plain.deadlocks} failed with 1213 without retries; ` +
      `with retries all landed (${resent} re-sent)\n`);
  });

  test('a scope whose COMMIT the server rolled back (certification conflict) lists that connection under rolledBack', async () => {
    const cluster = env.poolCluster();
    let threadId = 0;
    const error: ScopeCommitError = await rejection(
      cluster.of('g1').withScope(async () => {
        const conn = await cluster.getConnection('g1');
        threadId = conn.threadId;
        await conn.query(`UPDATE ${table} SET v = v + 1 WHERE id = 4`);
        conn.release(); // handed to the scope
        await g2.query(`UPDATE ${table} SET v = v + 100 WHERE id = 4`); // another node's write to the same row commits first
      }),
    );
    expect(error.code).toBe('ERR_SCOPE_COMMIT_FAILED');
    expect(error.rolledBack).toEqual([threadId]);
    expect(error.failed).toEqual([]);
    expect(error.committed).toEqual([]);
    expect((error.cause as { errno?: number }).errno).toBe(1213);
    expect(await value(g1, table, 4)).toBe(100);
    expect(falseAlarms(cluster)).toEqual({ abandoned: 0, rollbackFailures: 0 });
  });

  test('twoPhase is refused with ERR_TWO_PHASE_UNSUPPORTED before any XA statement, on the cluster and on a plain Pool', async () => {
    const xaBefore = await counter(g1, 'Com_xa_start');
    const cluster = env.poolCluster();
    await cluster.of('g1').query('SELECT 1'); // its first connection tells the cluster the node runs Galera
    let ran = false;
    const refused = await rejection(cluster.of('g1').withScope(async () => {
      ran = true;
    }, { twoPhase: true }));
    expect(refused.code).toBe('ERR_TWO_PHASE_UNSUPPORTED');
    expect(refused.message).toMatch(/Galera/);
    expect(ran).toBe(false);

    const pool = env.track(createPool({ uri: env.node(0).url, connectionLimit: 2 }));
    const events: string[] = [];
    pool.on('abandon', () => events.push('abandon'));
    pool.on('rollbackError', () => events.push('rollbackError'));
    for (let i = 0; i < 2; i++) {
      const error = await rejection(pool.withScope(async () => {
        await pool.query('SELECT 1');
      }, { twoPhase: true }));
      expect(error.code).toBe('ERR_TWO_PHASE_UNSUPPORTED');
    }
    expect(await counter(g1, 'Com_xa_start')).toBe(xaBefore);
    expect(events).toEqual([]);
    expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
  });
});
