/**
 * Two-phase commit of a request scope's connections with MySQL/MariaDB XA
 * transactions, and recovery of the branches a crash left prepared.
 *
 * Each connection of a `twoPhase` scope is one branch of one global
 * transaction: `XA START 'rp:<gtrid>','<n>'`. To commit, every branch is
 * ended and prepared (`XA END`, `XA PREPARE`); once all are prepared the
 * decision to commit is written down, and only then is each branch committed
 * (`XA COMMIT`). Any failure before the decision rolls every branch back.
 *
 *   active ──XA END, XA PREPARE (all)──▶ prepared ──decision 'commit' logged──▶ committing ──XA COMMIT (all)──▶ done
 *      └──────────── any failure before the decision ───────────▶ XA ROLLBACK (all)
 *
 * Why a decision record: after a crash, `XA RECOVER` lists prepared branches
 * but cannot say whether the coordinator had decided to commit them. Without
 * a record, a crash half way through the commit phase (some branches
 * committed, some still prepared) would look the same as one before it.
 * The record is one row per global transaction in a small InnoDB table
 * (`xaLogTable`), written on its own connection, and the row's primary key
 * makes the decision atomic: recovery that finds an undecided prepared
 * transaction writes `rollback` for it, and a coordinator still alive that
 * then tries to write `commit` finds the row taken and rolls back too
 * (presumed abort, with no race between the two).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Connection as PromiseConnection, RowDataPacket } from 'mysql2/promise';
import { TwoPhaseUnsupportedError } from '../errors';
import type { PoolConnection } from '../pool/lease';

/** Every global transaction id this library makes starts with this (then the tag of its log table). */
export const GTRID_PREFIX = 'rp:';

/** MySQL's error numbers for XA (see the server's `XAER_*` errors). */
const ER_XAER_NOTA = 1397; // unknown XID: already finished, never started, or owned by a live session (MariaDB)
const ER_NO_SUCH_TABLE = 1146;

/** How long a recovery's `rollback` decision is kept: a coordinator that was only slow must still find it. */
const KEEP_ROLLBACK_DECISIONS_HOURS = 24;

/** What a two-phase commit needs from the pool. */
export interface XaHost {
  /** A connection outside the pool (the pool may be exhausted by the scope's own branches). */
  openSideConnection(): Promise<PromiseConnection>;
  /** The decision table, already escaped (`xaLogTable`). */
  readonly xaLogTable: string;
}

/**
 * The part of a global transaction id that names its decision table: a
 * recovery reads only one table, so it must only touch the transactions
 * whose decisions are recorded there.
 */
function logTag(xaLogTable: string): string {
  return `${GTRID_PREFIX}${createHash('sha256').update(xaLogTable).digest('hex').slice(0, 8)}:`;
}

/** A new global transaction id: `rp:<tag of the log table>:` and 24 hex digits (XA allows 64 bytes). */
export function newGtrid(host: XaHost): string {
  return `${logTag(host.xaLogTable)}${randomBytes(12).toString('hex')}`;
}

/** The XID of branch `bqual` of `gtrid`, as SQL (both are made of safe characters only). */
export function xid(gtrid: string, bqual: string): string {
  return `'${gtrid}','${bqual}'`;
}

/** One connection of a two-phase scope, as the coordinator sees it. */
export interface XaBranch {
  readonly lease: PoolConnection;
  readonly xid: string;
}

/** The outcome of one global transaction's commit. */
export interface XaCommitOutcome {
  /** Branches committed. */
  readonly committed: XaBranch[];
  /** Branches whose step failed, with the error. */
  readonly failed: Array<{ branch: XaBranch; error: unknown }>;
  /** Branches rolled back. */
  readonly rolledBack: XaBranch[];
  /** Branches left prepared on the server: `pool.recoverXa()` finishes them as the decision record says. */
  readonly leftPrepared: XaBranch[];
  /** The first error, when the transaction did not commit everywhere. */
  readonly failure: unknown;
}

/** Whether each pool's server runs with `@@wsrep_on` (asked once per pool, by its first two-phase scope). */
const wsrepOn = new WeakMap<XaHost, boolean>();

/**
 * Refuses a two-phase scope on MariaDB Galera before any XA statement is
 * sent: with `@@wsrep_on` the server answers `XA START` with 1235 (XA is not
 * supported with Galera replication), and a prepared branch could not survive
 * a node's failure anyway. The first scope of a pool asks the server once
 * (`SHOW VARIABLES`, no transaction); later ones are refused with no round trip.
 */
export async function refuseXaOnGalera(host: XaHost, lease: PoolConnection): Promise<void> {
  let on = wsrepOn.get(host);
  if (on === undefined) {
    const [rows] = await lease.query<RowDataPacket[]>("SHOW VARIABLES WHERE Variable_name = 'wsrep_on'");
    on = String(rows[0]?.['Value'] ?? 'OFF').toUpperCase() === 'ON';
    wsrepOn.set(host, on);
  }
  if (on) throw new TwoPhaseUnsupportedError();
}

/** Ends (`XA END`) a branch still active. */
async function endBranch(branch: XaBranch): Promise<void> {
  await branch.lease.query(`XA END ${branch.xid}`);
}

/**
 * Rolls a branch back on its own connection, whatever its XA state (see
 * `Session.rollbackXa`). A branch that cannot be rolled back is destroyed:
 * the server rolls back an active one; a prepared one survives and is left to
 * recovery (no commit decision was written for it, so recovery rolls it back).
 */
export async function rollbackBranch(branch: XaBranch): Promise<boolean> {
  const { lease } = branch;
  if (lease.isReleased) return false;
  try {
    await lease.session.rollbackXa();
    return true;
  } catch {
    lease.destroy();
    return false;
  }
}

/**
 * Commits all branches or none. One branch needs no coordination (`XA COMMIT
 * ... ONE PHASE`); several go through prepare, decision, commit.
 */
export async function commitBranches(host: XaHost, gtrid: string, branches: XaBranch[]): Promise<XaCommitOutcome> {
  const committed: XaBranch[] = [];
  const failed: Array<{ branch: XaBranch; error: unknown }> = [];
  const rolledBack: XaBranch[] = [];
  const leftPrepared: XaBranch[] = [];
  const outcome = (failure?: unknown): XaCommitOutcome => ({ committed, failed, rolledBack, leftPrepared, failure });

  const rollBackAll = async (failure: unknown): Promise<XaCommitOutcome> => {
    for (const branch of branches) {
      if (await rollbackBranch(branch)) rolledBack.push(branch);
      else if (!failed.some((f) => f.branch === branch)) {
        failed.push({ branch, error: new Error('XA ROLLBACK failed: the connection was closed (the server rolls back an unprepared branch)') });
      }
    }
    return outcome(failure);
  };

  if (branches.length === 1) {
    const [branch] = branches as [XaBranch];
    try {
      await endBranch(branch);
      await branch.lease.query(`XA COMMIT ${branch.xid} ONE PHASE`);
      branch.lease.session.xaBranch = undefined;
      committed.push(branch);
      return outcome();
    } catch (error) {
      failed.push({ branch, error });
      return rollBackAll(error);
    }
  }

  // Phase one: every branch prepared, in parallel (each on its own connection).
  const prepared = await Promise.allSettled(
    branches.map(async (branch) => {
      await endBranch(branch);
      await branch.lease.query(`XA PREPARE ${branch.xid}`);
    }),
  );
  const prepareFailure = prepared.findIndex((result) => result.status === 'rejected');
  if (prepareFailure !== -1) {
    prepared.forEach((result, i) => {
      if (result.status === 'rejected') failed.push({ branch: branches[i] as XaBranch, error: result.reason });
    });
    return rollBackAll((prepared[prepareFailure] as PromiseRejectedResult).reason);
  }

  // The decision, on a connection of its own (kept for the record's deletion). If it cannot be read
  // back, nobody here knows it: the branches are left prepared, for recovery to finish as recorded.
  let side: PromiseConnection;
  let decision: Decision;
  try {
    side = await host.openSideConnection();
  } catch (error) {
    return leavePrepared(branches, error);
  }
  try {
    try {
      decision = await decide(host, side, gtrid, 'commit');
    } catch (error) {
      // Refused by the server (no privilege, no table): certainly not recorded, so nobody can have
      // decided commit; roll back now rather than leave locks held until a recovery.
      if (error instanceof NotRecorded) return await rollBackAll(error.cause);
      return leavePrepared(branches, error);
    }
    if (decision === 'rollback') {
      return await rollBackAll(new Error(`XA transaction ${gtrid} was decided 'rollback' by a recovery before it could commit`));
    }

    // Phase two: the decision is durable; every branch must end committed, by us now or by recovery later.
    const results = await Promise.allSettled(branches.map((branch) => commitPrepared(host, branch)));
    const stillPrepared: XaBranch[] = [];
    results.forEach((result, i) => {
      const branch = branches[i] as XaBranch;
      if (result.status === 'fulfilled') committed.push(branch);
      else {
        failed.push({ branch, error: result.reason });
        stillPrepared.push(branch);
      }
    });
    if (stillPrepared.length > 0) return leavePrepared(stillPrepared, failed[0]?.error);
    await forget(host, side, gtrid).catch(() => undefined); // a leftover row is harmless; recovery clears it
    return outcome();
  } finally {
    side.destroy();
  }

  /**
   * Branches whose fate is recorded (or may be) but not applied: their connections are closed (a
   * prepared branch survives that) instead of going back to the pool, whose cleanup would roll them
   * back whatever the record says.
   */
  function leavePrepared(left: XaBranch[], failure: unknown): XaCommitOutcome {
    for (const branch of left) {
      leftPrepared.push(branch);
      branch.lease.session.xaBranch = undefined;
      branch.lease.destroy();
    }
    return outcome(failure);
  }
}

/**
 * `XA COMMIT` of a prepared branch: on its own connection, or, if that one
 * died (its prepared branch survives it), from a fresh connection.
 */
async function commitPrepared(host: XaHost, branch: XaBranch): Promise<void> {
  const { lease } = branch;
  if (!lease.isReleased) {
    try {
      await lease.query(`XA COMMIT ${branch.xid}`);
      lease.session.xaBranch = undefined;
      return;
    } catch (error) {
      if (!lease.isReleased && lease.session.state === 'leased') throw error; // refused by the server, not a lost connection
    }
  }
  await withSideConnection(host, async (side) => {
    // The server may not have noticed the old connection's death yet: until then it still owns the
    // branch and another connection gets "unknown XID". A branch no longer listed is finished: with a
    // commit decision recorded, nothing but a commit can have finished it.
    for (let attempt = 0; ; attempt++) {
      try {
        await side.query(`XA COMMIT ${branch.xid}`);
        return;
      } catch (error) {
        if (errno(error) !== ER_XAER_NOTA) throw error;
        if (!(await isPrepared(side, branch.xid))) return;
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  });
}

/** True while `XA RECOVER` lists the branch (its SQL xid as made by `xid()`). */
async function isPrepared(side: PromiseConnection, branchXid: string): Promise<boolean> {
  const [rows] = await side.query<RowDataPacket[]>('XA RECOVER');
  return rows.map(parseRecovered).some((x) => xid(x.gtrid.toString('latin1'), x.bqual.toString('latin1')) === branchXid);
}

type Decision = 'commit' | 'rollback';

/**
 * Records `wanted` for `gtrid` unless a decision exists, and returns the
 * decision that holds. The primary key settles a race with a recovery.
 */
async function decide(host: XaHost, side: PromiseConnection, gtrid: string, wanted: Decision): Promise<Decision> {
  try {
    await withLogTable(host, side, () =>
      side.query(`INSERT INTO ${host.xaLogTable} (gtrid, decision) VALUES (?, ?) ON DUPLICATE KEY UPDATE gtrid = gtrid`, [gtrid, wanted]),
    );
  } catch (error) {
    // An error reply on a live connection: the row was not written. A lost connection: it may have been.
    if (!(error as { fatal?: boolean }).fatal && errno(error) !== undefined) throw new NotRecorded(error);
    throw error;
  }
  return readDecision(host, side, gtrid);
}

/** The server refused to record the decision: it certainly was not written. */
class NotRecorded extends Error {
  constructor(cause: unknown) {
    super('the XA decision could not be recorded', { cause });
  }
}

async function readDecision(host: XaHost, side: PromiseConnection, gtrid: string): Promise<Decision> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT decision FROM ${host.xaLogTable} WHERE gtrid = ?`, [gtrid]);
  const decision = rows[0]?.['decision'] as unknown;
  if (decision !== 'commit' && decision !== 'rollback') throw new Error(`No XA decision could be read back for ${gtrid}`);
  return decision;
}

/** Drops the record of a transaction committed everywhere. */
async function forget(host: XaHost, side: PromiseConnection, gtrid: string): Promise<void> {
  await side.query(`DELETE FROM ${host.xaLogTable} WHERE gtrid = ? AND decision = 'commit'`, [gtrid]);
}

/**
 * Runs `work` on the decision table, creating the table first if it does not
 * exist yet (ER_NO_SUCH_TABLE): a table created beforehand needs no CREATE
 * privilege.
 */
async function withLogTable<T>(host: XaHost, side: PromiseConnection, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (errno(error) !== ER_NO_SUCH_TABLE) throw error;
  }
  await side.query(
    `CREATE TABLE IF NOT EXISTS ${host.xaLogTable} (` +
      'gtrid VARBINARY(64) NOT NULL PRIMARY KEY, ' +
      "decision ENUM('commit','rollback') NOT NULL, " +
      'decided_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)' +
      ') ENGINE=InnoDB',
  );
  return work();
}

async function withSideConnection<T>(host: XaHost, fn: (side: PromiseConnection) => Promise<T>): Promise<T> {
  const side = await host.openSideConnection();
  try {
    return await fn(side);
  } finally {
    side.destroy();
  }
}

/** What `pool.recoverXa()` did. XIDs are written `gtrid,bqual`. */
export interface XaRecoveryReport {
  /** Prepared branches committed: their transaction had decided to commit. */
  readonly committed: string[];
  /** Prepared branches rolled back: no commit decision was recorded (presumed abort). */
  readonly rolledBack: string[];
  /**
   * Prepared branches still owned by a live connection (MariaDB does not let
   * another connection finish those): their coordinator finishes them. If it
   * was only slow, it finds the decision recovery recorded.
   */
  readonly inUse: string[];
}

interface RecoveredXid {
  readonly formatId: number;
  readonly gtrid: Buffer;
  readonly bqual: Buffer;
}

/**
 * Finishes the branches of this library's global transactions that a crash
 * left prepared: committed where a `commit` decision was recorded, rolled
 * back otherwise. Other applications' XA transactions, and those of pools
 * recording their decisions in another table, are not touched.
 */
export async function recoverPrepared(host: XaHost): Promise<XaRecoveryReport> {
  return withSideConnection(host, async (side) => {
    await withLogTable(host, side, () => side.query(`SELECT 1 FROM ${host.xaLogTable} LIMIT 0`));
    const [rows] = await side.query<RowDataPacket[]>('XA RECOVER');
    const report = { committed: [] as string[], rolledBack: [] as string[], inUse: [] as string[] };
    const tag = logTag(host.xaLogTable);
    const ours = rows.map(parseRecovered).filter((x) => x.formatId === 1 && x.gtrid.toString('latin1').startsWith(tag));
    const decisions = new Map<string, Decision>();
    for (const branch of ours) {
      const gtrid = branch.gtrid.toString('latin1');
      let decision = decisions.get(gtrid);
      if (decision === undefined) {
        await side.query(`INSERT INTO ${host.xaLogTable} (gtrid, decision) VALUES (?, 'rollback') ON DUPLICATE KEY UPDATE gtrid = gtrid`, [gtrid]);
        decision = await readDecision(host, side, gtrid);
        decisions.set(gtrid, decision);
      }
      const name = `${gtrid},${branch.bqual.toString('latin1')}`;
      const literal = `X'${branch.gtrid.toString('hex')}',X'${branch.bqual.toString('hex')}',${branch.formatId}`;
      try {
        await side.query(`XA ${decision === 'commit' ? 'COMMIT' : 'ROLLBACK'} ${literal}`);
        (decision === 'commit' ? report.committed : report.rolledBack).push(name);
      } catch (error) {
        if (errno(error) !== ER_XAER_NOTA) throw error;
        report.inUse.push(name);
      }
    }
    // Commit records whose branches are all finished are done with; rollback records are kept a while
    // so that a coordinator that was only slow still finds them.
    const stillPrepared = new Set(report.inUse.map((name) => name.slice(0, name.indexOf(','))));
    for (const [gtrid, decision] of decisions) {
      if (decision === 'commit' && !stillPrepared.has(gtrid)) {
        await side.query(`DELETE FROM ${host.xaLogTable} WHERE gtrid = ? AND decision = 'commit'`, [gtrid]);
      }
    }
    await side.query(
      `DELETE FROM ${host.xaLogTable} WHERE decision = 'rollback' AND decided_at < NOW(3) - INTERVAL ${KEEP_ROLLBACK_DECISIONS_HOURS} HOUR`,
    );
    return report;
  });
}

function parseRecovered(row: RowDataPacket): RecoveredXid {
  const data = Buffer.isBuffer(row['data']) ? (row['data'] as Buffer) : Buffer.from(String(row['data']), 'latin1');
  const gtridLength = Number(row['gtrid_length']);
  const bqualLength = Number(row['bqual_length']);
  return {
    formatId: Number(row['formatID']),
    gtrid: data.subarray(0, gtridLength),
    bqual: data.subarray(gtridLength, gtridLength + bqualLength),
  };
}

function errno(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? (error as { errno?: number }).errno : undefined;
}
