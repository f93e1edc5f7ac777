/**
 * createReplicaPool on a real pair: a private MariaDB primary (--log-bin,
 * server id 1) and its GTID replica (server id 2), started for this file and
 * stopped after it. `@@server_id` in a result says where a statement ran.
 * Staleness and lag are made deterministic by stopping the replica's SQL
 * thread, or by holding a row lock the replica's SQL thread needs; every
 * wait is for a condition.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, hasCode, type AbandonEvent, type ReplicaPool } from '../../src/index';
import { startProxy } from '../support/fault-proxy';
import { binlogPos, describePair, Pools, serverOf, side, untilHealth, usePair, waitUntil } from './helpers';

const T = 'rp_replica_t';
const PAIRS = 1_000;
/** Pairs written while the replica's SQL thread is stopped: their reads are certainly stale without read-your-writes. */
const STALLED = { from: 500, to: 510 };

describePair('createReplicaPool on a private primary/replica pair', () => {
  const env = usePair();
  const pools = new Pools();
  let primary: Connection;
  let replica: Connection;

  beforeAll(async () => {
    primary = await side(env.primaryUrl);
    replica = await side(env.replicaUrl);
    await primary.query(`CREATE TABLE ${T} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
    await primary.query(`INSERT INTO ${T} VALUES (1, 10), (2, 20)`);
    await env.pair.caughtUp();
  }, 30_000);
  afterAll(async () => {
    await primary?.end();
    await replica?.end();
  });
  afterEach(async () => {
    await pools.endAll();
    await replica.query('START SLAVE SQL_THREAD'); // a failed test must not leave the next one a stalled replica
  });

  const options = (extra: object = {}) => ({ primary: env.primaryUrl, replicas: [env.replicaUrl], ...extra });

  test('routing: plain reads and readOnly transactions on the replica; writes, locking reads, leases, other transactions and scopes on the primary', async () => {
    const pool = pools.create(options());
    await pool.ready();
    const s = async (run: Promise<[unknown, unknown]>): Promise<number> => serverOf((await run)[0]);
    expect(await s(pool.query('SELECT @@server_id AS s'))).toBe(2);
    expect(await s(pool.execute(`SELECT @@server_id AS s, v FROM ${T} WHERE id = ?`, [1]))).toBe(2);
    expect(await s(pool.query({ sql: 'SELECT @@server_id AS s' }))).toBe(2);
    expect(await s(pool.query(`SELECT @@server_id AS s FROM ${T} WHERE id = 1 FOR UPDATE`))).toBe(1);
    expect(await s(pool.query(`SELECT @@server_id AS s FROM ${T} WHERE id = 1 LOCK IN SHARE MODE`))).toBe(1);
    expect(await s(pool.query('SELECT @@server_id AS s, LAST_INSERT_ID() AS l'))).toBe(1);

    const conn = await pool.getConnection();
    expect(await s(conn.query('SELECT @@server_id AS s'))).toBe(1);
    conn.release();
    const tx = await pool.begin();
    expect(await s(tx.query('SELECT @@server_id AS s'))).toBe(1);
    await tx.commit();
    const ro = await pool.begin({ readOnly: true });
    expect(await s(ro.query('SELECT @@server_id AS s'))).toBe(2);
    await ro.commit();
    expect(await pool.transaction(async (t) => s(t.query('SELECT @@server_id AS s')))).toBe(1);
    expect(await pool.transaction(async (t) => s(t.query('SELECT @@server_id AS s')), { readOnly: true })).toBe(2);
    // In a request scope a read belongs to the scope's transaction, on the primary.
    expect(await pool.withScope(async () => s(pool.query('SELECT @@server_id AS s')))).toBe(1);
    const handle = pool.openScope();
    expect(await handle.run(() => s(pool.execute('SELECT @@server_id AS s')))).toBe(1);
    await handle.finish('commit');
    expect(await s(pool.replica().query('SELECT @@server_id AS s'))).toBe(2);
    expect(await s(pool.primary().query('SELECT @@server_id AS s'))).toBe(1);
    expect(pool.stats().reads.replica).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(pool)).not.toContain('password');
  });

  /** 1,000 INSERT-then-SELECT pairs through `pool`, the replica's SQL thread stopped for pairs 500 to 509. */
  async function writeThenRead(pool: ReplicaPool, base: number): Promise<{ stale: number; onReplica: number }> {
    let stale = 0;
    let onReplica = 0;
    for (let i = 0; i < PAIRS; i++) {
      if (i === STALLED.from) await replica.query('STOP SLAVE SQL_THREAD');
      if (i === STALLED.to) await replica.query('START SLAVE SQL_THREAD');
      await pool.execute(`INSERT INTO ${T} VALUES (?, ?)`, [base + i, i]);
      // One row whatever the replica has: v is NULL when the write is not there yet.
      const [rows] = await pool.execute<RowDataPacket[]>(`SELECT (SELECT v FROM ${T} WHERE id = ?) AS v, @@server_id AS s`, [base + i]);
      if (rows[0]!['v'] !== i) stale++;
      if (serverOf(rows) === 2) onReplica++;
    }
    return { stale, onReplica };
  }

  test(`read-your-writes: ${PAIRS} write-then-read pairs see every write, even while the replica's SQL thread is stopped`, async () => {
    const pool = pools.create(options({ maxLagMs: 300, healthCheckMs: 100 }));
    await pool.ready();
    const { stale, onReplica } = await writeThenRead(pool, 100_000);
    expect(stale).toBe(0);
    expect(onReplica).toBeGreaterThan(PAIRS / 2); // the replica served most reads, not the fallback
    const stats = pool.stats();
    expect(stats.readYourWrites.waits).toBeGreaterThan(0);
    // While stalled the replica could not serve them (a wait timed out, or a probe saw the thread stopped first): the primary did.
    expect(stats.reads.fallback).toBeGreaterThanOrEqual(STALLED.to - STALLED.from);
  }, 20_000);

  test(`readYourWrites 'none': the same pairs read stale rows (so the check above can fail)`, async () => {
    // No health check during the run: the stopped SQL thread must not take the replica out of rotation.
    const pool = pools.create(options({ readYourWrites: 'none', healthCheckMs: 60_000 }));
    await pool.ready();
    const { stale, onReplica } = await writeThenRead(pool, 200_000);
    expect(onReplica).toBe(PAIRS);
    expect(stale).toBeGreaterThanOrEqual(STALLED.to - STALLED.from);
    expect(pool.stats().readYourWrites.waits).toBe(0);
  }, 20_000);

  test("tx.gtid and pool.lastGtid match the primary's @@gtid_binlog_pos after every kind of commit", async () => {
    const pool = pools.create(options());
    expect(pool.lastGtid).toBeUndefined();
    await pool.query(`INSERT INTO ${T} VALUES (300, 0)`);
    expect(pool.lastGtid).toBe(await binlogPos(primary));
    await pool.execute(`UPDATE ${T} SET v = v + 1 WHERE id = ?`, [300]);
    expect(pool.lastGtid).toBe(await binlogPos(primary));

    const tx = await pool.begin();
    await tx.query(`UPDATE ${T} SET v = v + 1 WHERE id = 300`);
    expect(tx.gtid).toBeUndefined();
    await tx.commit();
    expect(tx.gtid).toBe(await binlogPos(primary));
    expect(pool.lastGtid).toBe(tx.gtid);

    let inner: string | undefined = 'unset';
    await pool.transaction(async (t) => {
      await t.query(`UPDATE ${T} SET v = v + 1 WHERE id = 300`);
      inner = t.gtid; // not committed yet
    });
    expect(inner).toBeUndefined();
    expect(pool.lastGtid).toBe(await binlogPos(primary));

    const conn = await pool.getConnection();
    await conn.query(`UPDATE ${T} SET v = v + 1 WHERE id = 300`);
    expect(pool.lastGtid).toBe(await binlogPos(primary));
    await conn.beginTransaction();
    await conn.query(`UPDATE ${T} SET v = v + 1 WHERE id = 300`);
    await conn.commit();
    expect(pool.lastGtid).toBe(await binlogPos(primary));
    conn.release();

    // No GTID for what writes nothing: a read-only commit, an UPDATE that changes no row.
    const before = pool.lastGtid;
    const ro = await pool.primary().begin({ readOnly: true });
    await ro.query(`SELECT v FROM ${T} WHERE id = 300`);
    await ro.commit();
    expect(ro.gtid).toBeUndefined();
    await pool.query(`UPDATE ${T} SET v = v WHERE id = 300`);
    expect(pool.lastGtid).toBe(before);
    expect(await binlogPos(primary)).toBe(before);

    // A pool without trackGtid asks for nothing and reports nothing.
    const plain = createPool({ uri: env.primaryUrl });
    try {
      const t = await plain.begin();
      await t.query(`UPDATE ${T} SET v = v + 1 WHERE id = 300`);
      await t.commit();
      expect(t.gtid).toBeUndefined();
      expect(plain.lastGtid).toBeUndefined();
    } finally {
      await plain.end();
    }
  });

  test('replica({ after }) waits until the replica has applied a GTID brought from elsewhere', async () => {
    const writer = createPool({ uri: env.primaryUrl, trackGtid: true }); // "another process"
    try {
      const pool = pools.create(options({ readYourWrites: 'none', healthCheckMs: 60_000, waitTimeoutMs: 20_000 }));
      await pool.ready();
      await replica.query('STOP SLAVE SQL_THREAD');
      await writer.query(`INSERT INTO ${T} VALUES (400, 4)`);
      const gtid = writer.lastGtid as string;
      expect(gtid).toBe(await binlogPos(primary));

      let settled = false;
      const read = pool.replica({ after: gtid }).query<RowDataPacket[]>(`SELECT v, @@server_id AS s FROM ${T} WHERE id = 400`);
      void read.then(() => (settled = true), () => (settled = true));
      await waitUntil(async () => {
        const [rows] = await replica.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT MASTER_GTID_WAIT(%'");
        return rows.length > 0;
      });
      expect(settled).toBe(false);
      const [stale] = await pool.query<RowDataPacket[]>(`SELECT v FROM ${T} WHERE id = 400`); // without `after`: not there yet
      expect(stale).toHaveLength(0);

      await replica.query('START SLAVE SQL_THREAD');
      const [rows] = await read;
      expect(rows).toEqual([{ v: 4, s: 2 }]);
      expect(() => pool.replica({ after: 'not a gtid' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    } finally {
      await writer.end();
    }
  });

  test('a stopped replica SQL thread takes the replica out of rotation (reads on the primary) and it comes back', async () => {
    const pool = pools.create(options({ healthCheckMs: 100 }));
    const states: string[] = [];
    pool.on('health', (event) => states.push(event.state));
    await untilHealth(pool, 'healthy');
    await replica.query('STOP SLAVE SQL_THREAD');
    await untilHealth(pool, 'broken');
    expect(pool.health()[0]!.reason).toContain('SQL thread: No');
    expect(serverOf((await pool.query('SELECT @@server_id AS s'))[0])).toBe(1);
    await replica.query('START SLAVE SQL_THREAD');
    await untilHealth(pool, 'healthy');
    expect(serverOf((await pool.query('SELECT @@server_id AS s'))[0])).toBe(2);
    expect(states).toEqual(['healthy', 'broken', 'healthy']);
  });

  test('injected lag (a row lock holding up the replication thread) takes the replica out of rotation as lagging; it comes back', async () => {
    const pool = pools.create(options({ maxLagMs: 200, healthCheckMs: 100 }));
    await untilHealth(pool, 'healthy');
    const blocker = await side(env.replicaUrl);
    try {
      await blocker.query('START TRANSACTION');
      await blocker.query(`SELECT v FROM ${T} WHERE id = 2 FOR UPDATE`); // the replicated UPDATE below waits for this lock
      await primary.query(`UPDATE ${T} SET v = v + 1 WHERE id = 2`);
      await untilHealth(pool, 'lagging');
      const [[status]] = await replica.query<RowDataPacket[]>('SHOW SLAVE STATUS');
      expect(status!['Slave_SQL_Running']).toBe('Yes'); // running, just behind: lag, not breakage
      expect(serverOf((await pool.query('SELECT @@server_id AS s'))[0])).toBe(1);
      await blocker.query('ROLLBACK');
      await untilHealth(pool, 'healthy');
      expect(serverOf((await pool.query('SELECT @@server_id AS s'))[0])).toBe(2);
    } finally {
      await blocker.end();
    }
  });

  test('a write through a replica handle is refused with ERR_REPLICA_WRITE, and nothing reaches the server', async () => {
    const proxy = await startProxy(env.replicaUrl, { onQuery: () => 'forward' }); // records every COM_QUERY the replica gets
    try {
      const pool = pools.create({ primary: env.primaryUrl, replicas: [proxy.url], healthCheckMs: 60_000 });
      await pool.ready();
      const prepares = async (): Promise<number> => {
        const [rows] = await replica.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'");
        return Number(rows[0]!['Value']);
      };
      const preparedBefore = await prepares();
      const refused = async (run: () => Promise<unknown>): Promise<void> => {
        const error = await run().then(() => undefined, (e: unknown) => e);
        expect(hasCode(error, 'ERR_REPLICA_WRITE')).toBe(true);
      };
      const r = pool.replica();
      await refused(() => r.query(`DELETE FROM ${T} WHERE id = 1`));
      await refused(() => r.execute(`UPDATE ${T} SET v = 0 WHERE id = ?`, [1]));
      await refused(() => r.query(`SELECT v FROM ${T} WHERE id = 1 FOR UPDATE`));
      await refused(() => r.query("SELECT GET_LOCK('rp', 0)"));

      const conn = await r.getConnection();
      expect(serverOf((await conn.query('SELECT @@server_id AS s'))[0])).toBe(2);
      await refused(() => conn.query(`INSERT INTO ${T} VALUES (500, 0)`));
      await refused(() => conn.query('SET GLOBAL read_only = 0'));
      await refused(() => conn.execute(`DROP TABLE ${T}`));
      await refused(() => new Promise((resolve, reject) => conn.connection.query(`DROP TABLE ${T}`, (err) => (err ? reject(err) : resolve(undefined)))));
      conn.release();
      await pool.transaction(
        async (tx) => {
          expect(serverOf((await tx.query('SELECT @@server_id AS s'))[0])).toBe(2);
          await refused(() => tx.query('CREATE TABLE rp_replica_never (id INT)'));
        },
        { readOnly: true },
      );

      const sent = proxy.queries.map((q) => q.sql);
      expect(sent).toContain('SELECT @@server_id AS s'); // the proxy does see what is sent
      expect(sent.filter((sql) => /\b(DELETE|UPDATE|INSERT|DROP|CREATE|GET_LOCK|GLOBAL)\b/i.test(sql))).toEqual([]);
      expect(await prepares()).toBe(preparedBefore);
      const [rows] = await replica.query<RowDataPacket[]>(`SELECT v FROM ${T} WHERE id = 1`);
      expect(rows).toEqual([{ v: 10 }]);
      // Behind the check, the server's own refusal: every replica connection is READ ONLY, for root too.
      expect(sent).toContain('SET SESSION TRANSACTION READ ONLY');
    } finally {
      await proxy.close();
    }
  });

  test('an abandoned transaction is rolled back on either side: row lock free and row gone on the primary, snapshot gone on the replica', async () => {
    const pool = pools.create(options({ replicas: [{ uri: env.replicaUrl, connectionLimit: 1 }] }));
    await pool.ready();
    const abandons: Array<AbandonEvent & { server: string }> = [];
    pool.on('abandon', (event) => abandons.push(event));
    const rollbacks: string[] = [];
    pool.on('rollback', (event) => rollbacks.push(event.server));

    // Primary: a lease released inside its transaction.
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${T} VALUES (600, 6)`);
    await conn.query(`UPDATE ${T} SET v = 99 WHERE id = 1`);
    conn.release();
    await waitUntil(() => rollbacks.includes('primary'));
    await primary.query('SET SESSION innodb_lock_wait_timeout = 1');
    const [locked] = await primary.query<RowDataPacket[]>(`SELECT v FROM ${T} WHERE id = 1 FOR UPDATE NOWAIT`); // free, or this throws 1205
    expect(locked).toEqual([{ v: 10 }]);
    const [gone] = await primary.query<RowDataPacket[]>(`SELECT id FROM ${T} WHERE id = 600`);
    expect(gone).toHaveLength(0);

    // Replica: a readOnly transaction (REPEATABLE READ snapshot taken by its first read) disposed while active.
    const tx = await pool.begin({ readOnly: true });
    const [[before]] = await tx.query<RowDataPacket[]>(`SELECT v, @@server_id AS s FROM ${T} WHERE id = 2`);
    expect(before!['s']).toBe(2);
    tx[Symbol.dispose]();
    await waitUntil(() => rollbacks.includes('replica 0'));
    expect(abandons.map((event) => [event.server, event.reason])).toEqual([
      ['primary', 'released-in-transaction'],
      ['replica 0', 'disposed'],
    ]);
    await waitUntil(async () => {
      const [trx] = await replica.query<RowDataPacket[]>('SELECT 1 FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?', [tx.threadId]);
      return trx.length === 0;
    });
    // A commit after the snapshot: the next user of the same connection sees it (a leaked snapshot would not).
    await pool.query(`UPDATE ${T} SET v = v + 1 WHERE id = 2`);
    const [[after]] = await pool.query<RowDataPacket[]>(`SELECT v, CONNECTION_ID() AS c, @@server_id AS s FROM ${T} WHERE id = 2`);
    expect(after).toEqual({ v: Number(before!['v']) + 1, c: tx.threadId, s: 2 });
  });

  test('while `ready()` waits, the pool keeps the process alive (a script whose only work is that wait must not exit silently)', async () => {
    // process.getActiveResourcesInfo(): what keeps the event loop alive. Before the fix the first
    // probe's timer was unref'd: a script doing only `await pool.ready()` could exit with code 0
    // before the probe ran, nothing printed (seen in `npm run bench -- --replica`).
    const alive = (): number => process.getActiveResourcesInfo().length;
    const before = alive();
    const pool = pools.create(options());
    const during = alive();
    await pool.ready();
    expect(during).toBeGreaterThan(before);
    expect(pool.health().map((h) => h.state)).toEqual(['healthy']);
  });
});
