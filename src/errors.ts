/**
 * Errors raised by rollback-pool itself. Every one carries a stable `code`
 * so callers can branch on it; messages say what happened and what to do,
 * and never contain a password. Errors from the server (ER_DUP_ENTRY and
 * friends) are mysql2's own error objects and pass through unchanged.
 */

/** Every code rollback-pool can raise. */
export type RollbackPoolErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_LEASE_RELEASED'
  | 'ERR_POOL_CLOSED'
  | 'ERR_ACQUIRE_TIMEOUT'
  | 'ERR_NO_CONNECTIONS'
  | 'ERR_QUEUE_LIMIT'
  | 'ERR_ROLLBACK_FAILED'
  | 'ERR_CONNECTION_LOST'
  | 'ERR_TX_CLOSED'
  | 'ERR_TX_ABANDONED'
  | 'ERR_TX_ENDED_BY_SERVER'
  | 'ERR_TX_TIMEOUT'
  | 'ERR_COMMIT_OUTCOME_UNKNOWN'
  | 'ERR_SCOPE_COMMIT_FAILED'
  | 'ERR_SCOPE_CLOSED'
  | 'ERR_CLUSTER_NODE_EXISTS'
  | 'ERR_UNSUPPORTED_VERSION'
  | 'ERR_UNSUPPORTED_DIALECT'
  | 'ERR_NODE_NOT_READY'
  | 'ERR_TWO_PHASE_UNSUPPORTED'
  /** mysql2's own code, kept so that `err.code` checks written for mysql2 still work. */
  | 'POOL_NOEXIST'
  /** mysql2's own code, kept so that `err.code` checks written for mysql2 still work. */
  | 'POOL_NONEONLINE'
  | 'ERR_REPLICA_WRITE';

/** Base class of every error rollback-pool raises. */
export class RollbackPoolError extends Error {
  /** Stable machine-readable code. */
  readonly code: RollbackPoolErrorCode;

  constructor(code: RollbackPoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option passed to `createPool` (or to a transaction) is not valid. */
export class InvalidOptionError extends RollbackPoolError {
  /** The name of the offending option. */
  readonly option: string;
  constructor(option: string, expected: string) {
    super('ERR_INVALID_OPTION', `Invalid option "${option}": expected ${expected}.`);
    this.option = option;
  }
}

/** A call was made on a connection lease after it was released or destroyed. */
export class LeaseReleasedError extends RollbackPoolError {
  constructor(method: string) {
    super(
      'ERR_LEASE_RELEASED',
      `Cannot call ${method}() on a connection that was already released: ` +
        'nothing was sent to the server. Take a new connection with pool.getConnection().',
    );
  }
}

/** The pool was ended; no more connections can be taken from it. */
export class PoolClosedError extends RollbackPoolError {
  constructor() {
    super('ERR_POOL_CLOSED', 'Pool is closed.');
  }
}

/** No connection became free within `acquireTimeoutMs`. */
export class AcquireTimeoutError extends RollbackPoolError {
  constructor(timeoutMs: number, cause?: unknown) {
    super(
      'ERR_ACQUIRE_TIMEOUT',
      `No connection could be acquired within ${timeoutMs} ms (acquireTimeoutMs). ` +
        'Release connections sooner, raise connectionLimit, or raise acquireTimeoutMs.',
      { cause },
    );
  }
}

/** `waitForConnections: false` and every connection is in use (same message as mysql2). */
export class NoConnectionsError extends RollbackPoolError {
  constructor() {
    super('ERR_NO_CONNECTIONS', 'No connections available.');
  }
}

/** `queueLimit` waiters are already queued (same message as mysql2). */
export class QueueLimitError extends RollbackPoolError {
  constructor() {
    super('ERR_QUEUE_LIMIT', 'Queue limit reached.');
  }
}

/**
 * The ROLLBACK of an abandoned transaction failed or timed out (its
 * connection was destroyed), or, thrown by `commit()`, the ROLLBACK TO of an
 * abandoned savepoint failed (the connection is kept; the transaction was
 * rolled back instead of committed).
 */
export class RollbackFailedError extends RollbackPoolError {
  constructor(reason: string, cause?: unknown, connectionDestroyed = true) {
    super(
      'ERR_ROLLBACK_FAILED',
      connectionDestroyed
        ? `The rollback of an abandoned transaction ${reason}; its connection was destroyed ` +
            'and will not be reused (the server rolls the transaction back when the connection closes).'
        : `The rollback to a savepoint of an abandoned transaction ${reason}; ` +
            'the transaction cannot commit and is rolled back instead.',
      { cause },
    );
  }
}

/**
 * The connection is gone (killed, server restarted, network cut, destroyed)
 * while a statement was queued on it, or a statement was asked for after.
 * `fatal` is true, as on mysql2's own errors for a lost connection.
 */
export class ConnectionLostError extends RollbackPoolError {
  /** As mysql2: the connection cannot be used any more. */
  readonly fatal = true;
  /**
   * True when the statement was refused before anything was written (the pool
   * already knew the connection was gone): its outcome is certain, it did not
   * run. A COMMIT refused this way did not commit (the server rolled the
   * transaction back when the connection went).
   */
  readonly neverSent: boolean;

  constructor(cause?: unknown, neverSent = false) {
    super('ERR_CONNECTION_LOST', 'The connection to the server was lost; it has been destroyed.', { cause });
    this.neverSent = neverSent;
  }
}

/** True when `value` is an error raised by rollback-pool with the given code. */
export function hasCode(value: unknown, code: RollbackPoolErrorCode): boolean {
  return value instanceof RollbackPoolError && value.code === code;
}

/** A call on a transaction that already ended (committed or rolled back). */
export class TransactionClosedError extends RollbackPoolError {
  constructor(method: string, state: string) {
    super('ERR_TX_CLOSED', `Cannot call ${method}() on a transaction that is ${state}: nothing was sent to the server.`);
  }
}

/** A call on a transaction that was abandoned (disposed, aborted, garbage collected, its lease released). */
export class TransactionAbandonedError extends RollbackPoolError {
  constructor(method: string, why: string, cause?: unknown) {
    super(
      'ERR_TX_ABANDONED',
      `Cannot call ${method}() on a transaction that was ${why}: it is being rolled back and nothing was sent to the server.`,
      { cause },
    );
  }
}

/** The server ended the transaction itself (deadlock, lock wait timeout with rollback, implicit commit by DDL). */
export class TransactionEndedByServerError extends RollbackPoolError {
  constructor(method: string, cause?: unknown) {
    super(
      'ERR_TX_ENDED_BY_SERVER',
      `Cannot call ${method}(): the server already ended this transaction (deadlock, lock wait timeout or an ` +
        'implicit commit by DDL), so the statement would run outside it. Start a new transaction.',
      { cause },
    );
  }
}

/** A callback transaction ran past its `timeoutMs`; it was fenced and rolled back. */
export class TransactionTimeoutError extends RollbackPoolError {
  constructor(timeoutMs: number) {
    super('ERR_TX_TIMEOUT', `The transaction did not finish within ${timeoutMs} ms (timeoutMs); it was rolled back.`);
  }
}

/** The connection died during COMMIT: the transaction may or may not have been committed. */
export class CommitOutcomeUnknownError extends RollbackPoolError {
  constructor(cause?: unknown) {
    super(
      'ERR_COMMIT_OUTCOME_UNKNOWN',
      'The connection was lost during COMMIT: the server may or may not have committed. ' +
        'Check the data before retrying.',
      { cause },
    );
  }
}

/**
 * A scope's commit decision could not be carried out on every connection.
 * Connections commit one by one (there is no atomic commit across connections
 * without two-phase commit): `committed` lists those that did (their work is
 * permanent), `failed` those whose COMMIT or ROLLBACK failed, `rolledBack` the rest.
 */
export class ScopeCommitError extends RollbackPoolError {
  constructor(
    /** Thread ids whose COMMIT succeeded before the failure: their work is permanent. */
    readonly committed: number[],
    /** Thread ids whose COMMIT (or ROLLBACK) failed, with the error. */
    readonly failed: Array<{ threadId: number; error: unknown }>,
    /** Thread ids rolled back after the failure. */
    readonly rolledBack: number[],
    cause: unknown,
    /**
     * Two-phase scopes only: XA branches left prepared on the server (their
     * connection or the server went away during the commit phase).
     * `pool.recoverXa()` finishes them all the same way: committed if the
     * commit decision was recorded, rolled back otherwise.
     */
    readonly leftPrepared: string[] = [],
  ) {
    super(
      'ERR_SCOPE_COMMIT_FAILED',
      `The scope's commit failed part way: ${committed.length} connection(s) committed, ` +
        `${failed.length} failed, ${rolledBack.length} rolled back` +
        (leftPrepared.length > 0 ? `, ${leftPrepared.length} XA branch(es) left prepared for pool.recoverXa().` : '.'),
      { cause },
    );
  }
}

/**
 * A connection was asked for in a request scope that has ended: it was
 * aborted (the client went away) and its work rolled back, or it finished
 * while the connection was still being acquired. Nothing was sent.
 */
export class ScopeClosedError extends RollbackPoolError {
  constructor(method: string, aborted: boolean) {
    super(
      'ERR_SCOPE_CLOSED',
      aborted
        ? `Cannot call ${method}(): the request scope this code runs in was aborted (the client went away) and its work rolled back.`
        : `${method}() was still waiting for a connection when the request scope ended; the connection was given back.`,
    );
  }
}

/**
 * A pool cluster has no node whose id matches the pattern (none was added, or
 * all were removed). Same `code` and message as mysql2's cluster.
 */
export class PoolNotExistError extends RollbackPoolError {
  /** The pattern nothing matched (as given: a glob string or a RegExp). */
  readonly pattern: string;
  constructor(pattern: string | RegExp) {
    super('POOL_NOEXIST', 'Pool does Not exist.');
    this.pattern = String(pattern);
  }
}

/**
 * Every node of a pool cluster that matches the pattern is offline (taken
 * out after failed checkouts, until `restoreNodeTimeout` has passed). Same
 * `code` and message as mysql2's cluster.
 */
export class PoolNoneOnlineError extends RollbackPoolError {
  /** The pattern whose nodes are all offline. */
  readonly pattern: string;
  constructor(pattern: string | RegExp) {
    super('POOL_NONEONLINE', 'Pool does Not have online node.');
    this.pattern = String(pattern);
  }
}

/**
 * `cluster.add(id, ...)` with an id the cluster already has (mysql2 ignores
 * the second node without a word). Remove the node first to replace it.
 */
export class ClusterNodeExistsError extends RollbackPoolError {
  /** The id that is already taken. */
  readonly nodeId: string;
  constructor(nodeId: string) {
    super('ERR_CLUSTER_NODE_EXISTS', `The pool cluster already has a node with id ${JSON.stringify(nodeId)}; remove it first to replace it.`);
    this.nodeId = nodeId;
  }
}

/**
 * A statement that is not provably read-only was sent through a connection
 * that must never write (a replica's, or a pool with `refuseWrites`): it was
 * refused before anything reached the server. On a replica a write would
 * succeed for a privileged user despite `read_only` and break replication.
 * Send writes through the primary (`replicaPool.primary()`, or the replica
 * pool's own `query`/`getConnection`, which route them there).
 */
export class ReplicaWriteError extends RollbackPoolError {
  /** Why the statement is not provably read-only (e.g. `not a SELECT`, `FOR UPDATE`, `calls GET_LOCK()`). */
  readonly reason: string;
  constructor(reason: string) {
    super(
      'ERR_REPLICA_WRITE',
      `Refused on a read-only (replica) connection, nothing was sent: the statement is not provably read-only (${reason}). ` +
        'Run it on the primary.',
    );
    this.reason = reason;
  }
}

/** What a Galera node says about itself (`SHOW GLOBAL STATUS`): whether it can serve. */
export interface GaleraNodeState {
  /** `wsrep_ready`: the node accepts queries. */
  readonly ready: boolean;
  /** `wsrep_local_state`: 4 is Synced (1 Joining, 2 Donor/Desynced, 3 Joined, 0 not in a primary component). */
  readonly localState: number;
  /** `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`, `Initialized`... */
  readonly stateComment: string;
  /** `wsrep_cluster_status`: `Primary`, `non-Primary` or `Disconnected`. */
  readonly clusterStatus: string;
}

/**
 * A pool cluster refused a new connection to a Galera node that cannot serve
 * (not `wsrep_ready = ON` with `wsrep_local_state = 4`, Synced): a node that
 * lost its primary component, is joining, or is a donor. The node is taken
 * offline and probed until it serves again; the call went to another node if
 * one was online.
 */
export class NodeNotReadyError extends RollbackPoolError {
  /** The node's state, as it reported it. */
  readonly state: GaleraNodeState;
  constructor(state: GaleraNodeState) {
    super(
      'ERR_NODE_NOT_READY',
      `The Galera node cannot serve: wsrep_ready ${state.ready ? 'ON' : 'OFF'}, wsrep_local_state ${state.localState} ` +
        `(${state.stateComment || 'unknown'}), wsrep_cluster_status ${state.clusterStatus || 'unknown'}.`,
    );
    this.state = state;
  }
}

/**
 * An integration that replaces a library's internals (`rollback-pool/sequelize`)
 * was given a version of that library it was not tested with. Nothing was
 * changed: the library still runs on its own pool. `supported` is the range
 * that is known to work.
 */
export class UnsupportedVersionError extends RollbackPoolError {
  /** The library, e.g. `'sequelize'`. */
  readonly library: string;
  /** The version found (`'unknown'` when it could not be read). */
  readonly version: string;
  /** The versions this integration supports, e.g. `'>=6.21.0 <6.38.0'`. */
  readonly supported: string;
  constructor(library: string, version: string, supported: string) {
    super(
      'ERR_UNSUPPORTED_VERSION',
      `rollback-pool does not support ${library} ${version}: it replaces ${library} internals and is tested on ${supported}. ` +
        `Install a supported ${library} version, or upgrade rollback-pool.`,
    );
    this.library = library;
    this.version = version;
    this.supported = supported;
  }
}

/**
 * An integration was given a database dialect it cannot run on a
 * rollback-pool pool (`rollback-pool/sequelize` runs Sequelize's `mysql`
 * dialect, which drives mysql2 and speaks to MySQL and MariaDB servers alike).
 * Nothing was changed.
 */
export class UnsupportedDialectError extends RollbackPoolError {
  /** The dialect found. */
  readonly dialect: string;
  constructor(library: string, dialect: string, hint: string) {
    super('ERR_UNSUPPORTED_DIALECT', `rollback-pool cannot run ${library}'s ${JSON.stringify(dialect)} dialect: ${hint}`);
    this.dialect = dialect;
  }
}

/**
 * A two-phase request scope (`twoPhase: true`) on a server with
 * `@@wsrep_on` (MariaDB Galera): Galera does not support XA transactions (it
 * answers `XA START` with 1235), so the scope is refused before any XA
 * statement is sent. Use a plain scope: on one Galera node a transaction is
 * already replicated atomically to every node.
 */
export class TwoPhaseUnsupportedError extends RollbackPoolError {
  constructor() {
    super(
      'ERR_TWO_PHASE_UNSUPPORTED',
      'twoPhase scopes need XA transactions, which MariaDB Galera does not support (@@wsrep_on is ON; XA START would fail ' +
        'with 1235). Nothing was sent. Use a plain scope (twoPhase: false): on one Galera node, its transaction is replicated atomically.',
    );
  }
}
