/**
 * The ledger: every transaction of the soak writes one unique token (a row of
 * the ledger table), and the client records what it was told about it:
 *
 * - `committed`: COMMIT resolved (acknowledged). The token must be present.
 * - `notCommitted`: no COMMIT was ever sent for its transaction (rollback, a
 *   thrown callback, a timeout or abort that rejected before the commit, a
 *   release without commit, a disposed or dropped handle, a scope that decided
 *   rollback). The token must be absent: only explicit commits commit.
 * - `unknown`: COMMIT was sent and no success came back (the connection died
 *   during COMMIT, or COMMIT answered with an error). Either way is fine;
 *   they are counted, with how many turned out present.
 *
 * Memory stays flat: the record is two bytes per transaction in typed arrays
 * (outcome and kind), not objects; the check runs once at the end, after the
 * pool is closed (so an abandoned transaction can no longer be committed by
 * anyone), by reading the table in token ranges.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';

export const OUTCOMES = ['pending', 'committed', 'notCommitted', 'unknown'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** How a transaction of the workload ends. */
export const END_KINDS = [
  'commit', // pool.begin() handle, tx.commit()
  'connCommit', // getConnection(), beginTransaction(), commit(), release()
  'rollback', // handle, tx.rollback()
  'throw', // pool.transaction(), the callback throws
  'timeout', // pool.transaction({ timeoutMs }), usually too slow
  'abort', // pool.transaction({ signal }), aborted at a random moment
  'release', // getConnection(), a transaction opened (3 ways), release() without commit
  'dispose', // `using tx = await pool.begin()`, block left without commit
  'drop', // pool.begin() handle simply dropped (garbage collected)
  'scope', // pool.withScope(), decide() picks commit or rollback
  'scopeXa', // pool.withScope({ twoPhase: true }), two connections (the token and its twin row), decide() picks
] as const;
export type EndKind = (typeof END_KINDS)[number];

export interface Violation {
  what: string;
  token?: number;
  kind?: EndKind;
}

export interface LedgerCheck {
  /** Acknowledged commits found / missing. */
  committedPresent: number;
  committedMissing: number;
  /** Certainly-not-committed tokens found (ghosts) / correctly absent. */
  notCommittedPresent: number;
  notCommittedAbsent: number;
  unknownPresent: number;
  unknownAbsent: number;
  /** Tokens whose outcome was never recorded (a hung worker): must be 0. */
  pending: number;
  /** Rows in the table whose token the client never handed out: must be 0. */
  strangers: number;
  /** The first violations found (at most 50; the counters above have them all). */
  violations: Violation[];
}

const MAX_LISTED = 50;

const OUTCOME_CODE: Record<Outcome, number> = { pending: 0, committed: 1, notCommitted: 2, unknown: 3 };

export class Ledger {
  private outcomes = new Uint8Array(1 << 14);
  private kinds = new Uint8Array(1 << 14);
  private last = 0;
  /** Outcomes by end kind (small, fixed size). */
  readonly byKind = new Map<string, number>();
  /** Why transactions ended as they did (error codes, "deliberate", ...), counted. */
  readonly details = new Map<string, number>();

  constructor(readonly table: string) {}

  static ddl(table: string): string {
    return `CREATE TABLE ${table} (token BIGINT NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, ` +
      'worker INT NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB';
  }

  /** The INSERT every transaction runs (token, kind, worker). */
  get insertSql(): string {
    return `INSERT INTO ${this.table} (token, kind, worker) VALUES (?, ?, ?)`;
  }

  /** A new token for a transaction that ends by `kind`. */
  next(kind: EndKind): number {
    const token = ++this.last;
    if (token >= this.outcomes.length) {
      const outcomes = new Uint8Array(this.outcomes.length * 2);
      outcomes.set(this.outcomes);
      this.outcomes = outcomes;
      const kinds = new Uint8Array(this.kinds.length * 2);
      kinds.set(this.kinds);
      this.kinds = kinds;
    }
    this.kinds[token] = END_KINDS.indexOf(kind);
    return token;
  }

  /** Records what the client was told. Recording twice is a bug of the workload: it throws. */
  record(token: number, outcome: Exclude<Outcome, 'pending'>, detail: string): void {
    if (this.outcomes[token] !== 0) throw new Error(`token ${token} recorded twice`);
    this.outcomes[token] = OUTCOME_CODE[outcome];
    const kind = END_KINDS[this.kinds[token]!]!;
    bump(this.byKind, `${kind}:${outcome}`);
    bump(this.details, `${outcome}:${detail}`);
  }

  get issued(): number {
    return this.last;
  }

  /** Bytes the record takes (typed arrays, outside the JS heap). */
  get bytes(): number {
    return this.outcomes.byteLength + this.kinds.byteLength;
  }

  /** Compares the record with the table, reading it in token ranges. */
  async check(side: Connection): Promise<LedgerCheck> {
    const result: LedgerCheck = {
      committedPresent: 0, committedMissing: 0, notCommittedPresent: 0, notCommittedAbsent: 0,
      unknownPresent: 0, unknownAbsent: 0, pending: 0, strangers: 0, violations: [],
    };
    const present = new Uint8Array(this.last + 1);
    const step = 50_000;
    for (let from = 0; ; from += step) {
      const [rows] = await side.query<RowDataPacket[]>(
        `SELECT token FROM ${this.table} WHERE token > ? AND token <= ? ORDER BY token`, [from, from + step]);
      for (const row of rows) {
        const token = Number(row.token);
        if (token < 1 || token > this.last) result.strangers++;
        else present[token] = 1;
      }
      if (from + step >= this.last) break;
    }
    const [[{ n }]] = (await side.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ${this.table} WHERE token > ? OR token < 1`, [this.last])) as unknown as [[{ n: number }]];
    result.strangers += Number(n);
    if (result.strangers > 0) result.violations.push({ what: `${result.strangers} row(s) with a token never handed out` });

    for (let token = 1; token <= this.last; token++) {
      const kind = END_KINDS[this.kinds[token]!]!;
      const found = present[token] === 1;
      switch (this.outcomes[token]) {
        case OUTCOME_CODE.committed:
          if (found) result.committedPresent++;
          else {
            result.committedMissing++;
            if (result.violations.length < MAX_LISTED) result.violations.push({ what: 'acknowledged commit missing', token, kind });
          }
          break;
        case OUTCOME_CODE.notCommitted:
          if (found) {
            result.notCommittedPresent++;
            if (result.violations.length < MAX_LISTED) result.violations.push({ what: 'certainly-not-committed token present', token, kind });
          } else result.notCommittedAbsent++;
          break;
        case OUTCOME_CODE.unknown:
          if (found) result.unknownPresent++;
          else result.unknownAbsent++;
          break;
        default:
          result.pending++;
          if (result.violations.length < MAX_LISTED) result.violations.push({ what: 'transaction never finished (no outcome recorded)', token, kind });
      }
    }
    return result;
  }
}

/** Ledger violations, all counted (not only the listed ones). */
export function violationCount(check: LedgerCheck): number {
  return check.committedMissing + check.notCommittedPresent + check.pending + (check.strangers > 0 ? 1 : 0);
}

export function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}
