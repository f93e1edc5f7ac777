/**
 * ReplicaHandle: what `replicaPool.replica()` returns, the explicit way to
 * read from a replica. Every statement is checked first: anything not
 * provably read-only is refused with `ERR_REPLICA_WRITE` and nothing is sent,
 * wherever the read would have run. Leases and transactions come from a
 * `refuseWrites` pool (a replica's, or the primary's read-only twin), so the
 * same check covers every statement sent on them, including their callback
 * face.
 */
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { ReplicaWriteError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import type { GtidPosition } from '../pool/gtid';
import type { PoolConnection } from '../pool/lease';
import type { TransactionOptions } from '../tx/run';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import type { ReplicaPool } from './replica-pool';
import { readOnlyReason } from './statement';

/** Options of `replicaPool.replica()`. */
export interface ReplicaHandleOptions {
  /**
   * A GTID or GTID position (e.g. another process's `lastGtid`, carried in a
   * cookie or a job) that the replica must have applied before the read runs.
   */
  after?: string;
}

/** Reads forced onto a replica (see `replicaPool.replica()`). */
export class ReplicaHandle {
  /** @internal Use `replicaPool.replica()`. */
  constructor(
    private readonly owner: ReplicaPool,
    private readonly after: GtidPosition | undefined,
  ) {}

  /** Runs a provably read-only statement on a replica (text protocol); anything else rejects with `ERR_REPLICA_WRITE`. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    const refused = refusal(sql);
    if (refused) return Promise.reject(refused);
    return this.owner.read(this.target(), (pool) => pool.query<T>(sql, values), () => this.owner.primary().query<T>(sql, values));
  }

  /** Runs a provably read-only prepared statement on a replica; anything else rejects with `ERR_REPLICA_WRITE`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    const refused = refusal(sql);
    if (refused) return Promise.reject(refused);
    return this.owner.read(this.target(), (pool) => pool.execute<T>(sql, values), () => this.owner.primary().execute<T>(sql, values));
  }

  /** A read-only connection on a replica: any statement not provably read-only is refused (`ERR_REPLICA_WRITE`). */
  getConnection(): Promise<PoolConnection> {
    return this.owner.read(
      this.target(),
      (pool) => pool.getConnection(),
      () => this.owner.readOnlyPrimary().then((pool) => pool.getConnection()),
    );
  }

  /** A read-only transaction (`START TRANSACTION READ ONLY`) on a replica. */
  begin(options?: BeginOptions): Promise<Transaction> {
    return this.owner.readOnlyBegin(this.target(), options);
  }

  /** Runs `fn` in a read-only transaction on a replica (options as `pool.transaction()`; `readOnly` is forced). */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.owner.readOnlyTransaction(this.target(), fn, options);
  }

  /** What `JSON.stringify(handle)` shows: the GTID it waits for, nothing of the connection options. */
  toJSON(): { after: string | undefined } {
    return { after: this.after?.value };
  }

  /** What `console.log(handle)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('ReplicaHandle', this.toJSON(), options);
  }

  private target(): GtidPosition | undefined {
    return this.owner.targetWith(this.after);
  }
}

function refusal(sql: string | QueryOptions): ReplicaWriteError | undefined {
  const text = typeof sql === 'string' ? sql : (sql as QueryOptions | null)?.sql;
  const reason = typeof text === 'string' ? readOnlyReason(text) : 'no SQL text';
  return reason === undefined ? undefined : new ReplicaWriteError(reason);
}
