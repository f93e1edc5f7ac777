/**
 * Request scope: the registry of a request's outstanding connections.
 *
 * Inside `pool.withScope(fn, { decide })`, every connection the code takes
 * (`getConnection`, `begin`, `query`, `execute`) is registered here and runs
 * in a transaction owned by the scope (a unit of work). The code owns a
 * connection while it uses it; releasing it hands the session to the scope
 * instead of the pool. When the scope ends, `decide` (from the result or the
 * error, or from an HTTP response in the framework adapters) commits or rolls
 * back all of them, in acquisition order, and only then are they given back.
 *
 *   open ──fn settled, decide()──▶ deciding ──all committed / rolled back──▶ closed
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ScopeClosedError, ScopeCommitError } from '../errors';
import type { AbandonReason } from '../pool/events';
import type { LeaseOwner } from '../pool/lease';
import { PoolConnection } from '../pool/lease';
import { ER_LOCK_DEADLOCK, type Session } from '../pool/session';
import { commitBranches, newGtrid, refuseXaOnGalera, rollbackBranch, xid, type XaBranch, type XaHost } from './xa';

/** What the scope's code produced: a value, or the error it threw. */
export type ScopeOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** What to do with every connection of the scope. */
export type ScopeDecision = 'commit' | 'rollback';

/** How a scope's transactions are run and ended. */
export interface ScopeTransactionOptions {
  /**
   * Commit all connections or none, with XA transactions (`XA START`, then
   * `XA END` + `XA PREPARE` on every connection, a decision record, and
   * `XA COMMIT`). Refused with `ERR_TWO_PHASE_UNSUPPORTED` on a server with
   * `@@wsrep_on` (MariaDB Galera has no XA), before any XA statement is sent.
   * Default false: one plain transaction per connection,
   * committed in acquisition order (a failure part way leaves the earlier
   * ones committed, and says so). Inside a two-phase scope the code cannot
   * `COMMIT`, `ROLLBACK` or `BEGIN` itself (the server refuses them in an XA
   * transaction). Run `pool.recoverXa()` at startup to finish what a crash
   * left prepared.
   */
  twoPhase?: boolean;
}

/** Options of `pool.withScope()`. */
export interface ScopeOptions extends ScopeTransactionOptions {
  /** Commit or roll back, from the outcome. Default: commit if `fn` resolved, roll back if it threw. */
  decide?: (outcome: ScopeOutcome) => ScopeDecision | Promise<ScopeDecision>;
}

/** One connection of the scope: the scope's own lease and the view the code was given. */
interface Entry {
  readonly inner: PoolConnection;
  readonly view: PoolConnection;
  /** Its XA branch, in a two-phase scope. */
  readonly xid: string | undefined;
}

/** The pool's side of a scope: how to take a connection for it, and the owner that views delegate to. */
export interface ScopeHost extends XaHost {
  acquireForScope(): Promise<PoolConnection>;
  readonly leaseOwner: LeaseOwner;
}

const current = new AsyncLocalStorage<Scope>();

/**
 * The scope of `host` in the current async context, if it is open, or
 * aborted: then its calls reject, so that the code of a request whose client
 * went away cannot fall through to autocommit.
 */
export function currentScope(host: ScopeHost): Scope | undefined {
  const scope = current.getStore();
  return scope !== undefined && scope.host === host && (scope.isOpen || scope.isAborted) ? scope : undefined;
}

/** Runs `fn` in a new scope of `host`, or joins the open one (nested scopes join the outer one). */
export async function runInScope<T>(host: ScopeHost, fn: () => Promise<T>, options: ScopeOptions = {}): Promise<T> {
  if (currentScope(host)) return fn();
  const scope = new Scope(host, options);
  let outcome: ScopeOutcome;
  try {
    outcome = { ok: true, value: await current.run(scope, fn) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  let decision: ScopeDecision;
  try {
    decision = options.decide ? await options.decide(outcome) : outcome.ok ? 'commit' : 'rollback';
  } catch (error) {
    await scope.finish('rollback');
    throw error;
  }
  await scope.finish(decision === 'commit' ? 'commit' : 'rollback');
  if (!outcome.ok) throw outcome.error;
  return outcome.value as T;
}

/**
 * A scope opened by hand, for framework adapters whose requests do not fit in
 * one function call: `run` enters it (everything `run` starts, and their
 * continuations, belong to it), `finish` decides.
 */
export class ScopeHandle {
  /** @internal */
  constructor(private readonly scope: Scope) {}

  /** Runs `fn` inside the scope (AsyncLocalStorage context). */
  run<T>(fn: () => T): T {
    return current.run(this.scope, fn);
  }

  /** True until `finish` was called. */
  get isOpen(): boolean {
    return this.scope.isOpen;
  }

  /** Commits or rolls back every connection of the scope, then gives them back. Idempotent. */
  finish(decision: ScopeDecision): Promise<void> {
    return this.scope.finish(decision);
  }

  /**
   * The request went away (the client hung up): rolls back like
   * `finish('rollback')`, and from then on the code still running in the
   * scope gets `ERR_SCOPE_CLOSED` from `getConnection`, `begin`, `query`,
   * `execute` and `transaction`, instead of a connection outside the scope.
   */
  abort(): Promise<void> {
    return this.scope.abort();
  }
}

/** Opens a scope of `host` by hand (see `ScopeHandle`). */
export function openScope(host: ScopeHost, options: ScopeTransactionOptions = {}): ScopeHandle {
  return new ScopeHandle(new Scope(host, options));
}

export class Scope {
  private readonly entries: Entry[] = [];
  private shared: Promise<Entry> | undefined;
  private state: 'open' | 'deciding' | 'closed' = 'open';
  private finishing: Promise<void> | undefined;
  private aborted = false;
  /** The global transaction of a two-phase scope; its branches are numbered from 1. */
  private readonly gtrid: string | undefined;
  private branches = 0;

  constructor(
    readonly host: ScopeHost,
    options: ScopeTransactionOptions = {},
  ) {
    this.gtrid = options.twoPhase === true ? newGtrid(host) : undefined;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** True once `abort` was called on the open scope. */
  get isAborted(): boolean {
    return this.aborted;
  }

  /** A connection of its own for the code, inside the scope's transaction. */
  async getConnection(): Promise<PoolConnection> {
    if (this.aborted) throw new ScopeClosedError('getConnection', true);
    return (await this.enlist()).view;
  }

  /** The connection `pool.query` / `pool.execute` share inside the scope. */
  async sharedConnection(): Promise<PoolConnection> {
    if (this.aborted) throw new ScopeClosedError('query', true);
    this.shared ??= this.enlist();
    return (await this.shared).inner;
  }

  /** Rolls back (unless already deciding) and makes the scope's later calls reject. */
  abort(): Promise<void> {
    if (this.state === 'open') this.aborted = true;
    return this.finish('rollback');
  }

  /**
   * Ends the scope: commits or rolls back every connection still inside a
   * transaction, in acquisition order, then gives them all back. A transaction
   * the code committed itself stays committed. Commits are not atomic across
   * connections: if one fails, the rest are rolled back and `ScopeCommitError`
   * says which committed and which did not.
   */
  finish(decision: ScopeDecision): Promise<void> {
    this.finishing ??= this.settle(decision);
    return this.finishing;
  }

  private async settle(decision: ScopeDecision): Promise<void> {
    this.state = 'deciding';
    if (this.shared) await this.shared.catch(() => undefined); // enlisted (or failed) before we look
    for (const entry of this.entries) entry.view.release(); // leases still held are taken over
    try {
      if (this.gtrid !== undefined) await this.settleTwoPhase(this.gtrid, decision);
      else await this.settleOneByOne(decision);
    } finally {
      for (const { inner } of this.entries) inner.release(); // anything still open is the pool's to roll back
      this.state = 'closed';
    }
  }

  /** Plain transactions: committed in acquisition order; a failure rolls back the rest. */
  private async settleOneByOne(decision: ScopeDecision): Promise<void> {
    const committed: number[] = [];
    const failed: Array<{ threadId: number; error: unknown }> = [];
    const rolledBack: number[] = [];
    let commitFailure: unknown;
    for (const { inner } of this.entries) {
      if (inner.isReleased) continue; // destroyed
      if (!inner.inTransaction) continue; // the code committed (or rolled back) itself
      if (decision === 'commit' && commitFailure === undefined) {
        try {
          await inner.commit();
          committed.push(inner.threadId);
          continue;
        } catch (error) {
          commitFailure = error;
          if ((error as { errno?: number }).errno === ER_LOCK_DEADLOCK) {
            rolledBack.push(inner.threadId); // a deadlock or a Galera certification failure: the server rolled it back
            continue;
          }
          failed.push({ threadId: inner.threadId, error });
          // If it is still alive and open, undo it; a dead one was rolled back by the server.
          if (inner.inTransaction) await inner.rollback().catch(() => inner.destroy());
          continue;
        }
      }
      try {
        await inner.rollback();
        rolledBack.push(inner.threadId);
      } catch (error) {
        failed.push({ threadId: inner.threadId, error });
        inner.destroy(); // the server rolls back when the connection closes
      }
    }
    if (commitFailure !== undefined) throw new ScopeCommitError(committed, failed, rolledBack, commitFailure);
  }

  /**
   * XA branches: all committed or none (see ./xa.ts). A branch whose
   * connection was lost before the end took its work with it, so the others
   * cannot commit either.
   */
  private async settleTwoPhase(gtrid: string, decision: ScopeDecision): Promise<void> {
    const branches: XaBranch[] = [];
    const lost: Array<{ threadId: number; error: unknown }> = [];
    for (const { inner, xid } of this.entries) {
      if (xid === undefined) continue;
      if (inner.isReleased || inner.session.state !== 'leased') {
        lost.push({ threadId: inner.threadId, error: new Error('the connection was closed before the scope ended: its work is lost') });
        inner.destroy();
      } else branches.push({ lease: inner, xid });
    }
    if (decision === 'rollback' || lost.length > 0) {
      const rolledBack: number[] = [];
      for (const branch of branches) {
        if (await rollbackBranch(branch)) rolledBack.push(branch.lease.threadId);
        else lost.push({ threadId: branch.lease.threadId, error: new Error('XA ROLLBACK failed: the connection was closed') });
      }
      if (decision === 'commit') throw new ScopeCommitError([], lost, rolledBack, lost[0]?.error);
      return;
    }
    const outcome = await commitBranches(this.host, gtrid, branches);
    if (outcome.failure === undefined) return;
    throw new ScopeCommitError(
      outcome.committed.map((b) => b.lease.threadId),
      outcome.failed.map(({ branch, error }) => ({ threadId: branch.lease.threadId, error })),
      outcome.rolledBack.map((b) => b.lease.threadId),
      outcome.failure,
      outcome.leftPrepared.map((b) => b.xid),
    );
  }

  private async enlist(): Promise<Entry> {
    const inner = await this.host.acquireForScope();
    if (this.state !== 'open') {
      // The scope ended while we waited for the connection: it must not reach the code.
      inner.release();
      throw new ScopeClosedError('getConnection', this.aborted);
    }
    const branch = this.gtrid === undefined ? undefined : xid(this.gtrid, String(++this.branches));
    try {
      // The scope's unit of work (guarded before it is written: a failed start is still rolled back).
      if (branch === undefined) await inner.beginTransaction();
      else {
        await refuseXaOnGalera(this.host, inner); // before XA START: Galera would refuse it (1235)
        inner.armTransactionGuard();
        inner.session.xaBranch = branch;
        await inner.query(`XA START ${branch}`);
      }
    } catch (error) {
      inner.release();
      throw error;
    }
    if (this.state !== 'open') {
      // Ended during BEGIN: finish() did not see this one. Undo the BEGIN and give it back.
      if (branch === undefined) await inner.rollback().catch(() => inner.destroy());
      else await rollbackBranch({ lease: inner, xid: branch });
      inner.release();
      throw new ScopeClosedError('getConnection', this.aborted);
    }
    const entry: Entry = { inner, view: new PoolConnection(this.viewOwner(inner), inner.session, inner.takenAt), xid: branch };
    this.entries.push(entry);
    return entry;
  }

  /**
   * The owner of the view handed to the code: a plain release hands the session
   * to the scope (nothing happens until the scope ends); an abandon (a disposed
   * or lost transaction handle) rolls back at once, as outside a scope.
   */
  private viewOwner(inner: PoolConnection): LeaseOwner {
    const owner = this.host.leaseOwner;
    return {
      get closed() {
        return owner.closed;
      },
      captureStacks: owner.captureStacks,
      captureCaller: (below) => owner.captureCaller(below),
      releaseSession: (_session: Session, _lease: PoolConnection, why?: AbandonReason) => {
        // An XA branch cannot take a plain ROLLBACK: it is rolled back with the scope.
        if (why !== undefined && inner.session.xaBranch === undefined) inner.queueRollback('ROLLBACK');
      },
      destroySession: () => inner.destroy(),
      endLease: () => Promise.resolve(), // like a plain release: the scope decides, then gives the connection back
      gracefulEnd: false,
      watchLease: () => undefined, // the scope holds the inner lease: a view cannot lose the session
      reportRollbackError: (session, error) => owner.reportRollbackError(session, error),
      beginOn: (lease, options, ownsLease, stack, caller) => owner.beginOn(lease, options, ownsLease, stack, caller),
      killQuery: (session) => owner.killQuery(session),
      reportAbandon: (session, why, stack) => owner.reportAbandon(session, why, stack),
      runOn: (lease, fn, options, caller) => owner.runOn(lease, fn, options, caller),
    };
  }
}
