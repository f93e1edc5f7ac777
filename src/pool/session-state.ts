/**
 * Session state a connection could hand to its next user (`resetOnRelease:
 * 'whenDirty'`): user variables, `SET SESSION` settings, temporary tables,
 * named locks, table locks. Known from two sources:
 *
 * - the server: with `session_track_state_change = ON`, every OK packet of a
 *   statement that changed session state carries SERVER_SESSION_STATE_CHANGED;
 * - the statement text, for what no flag shows. Measured on MariaDB 10.11
 *   (README, "Session state"): `LOCK TABLES`, `GET_LOCK()`, `SELECT ... INTO
 *   @v`, `CREATE TEMPORARY TABLE ... SELECT`, `HANDLER ... OPEN` come back
 *   unflagged; a user-variable assignment inside a SELECT (`SELECT @v := 1`)
 *   returns a result set, whose final status sits in an EOF packet mysql2 does
 *   not expose; a procedure's body is invisible (`SELECT ... INTO @v` inside
 *   one is not flagged), so any `CALL` counts.
 *
 * False positives (`:=` inside a string literal, say) cost one needless reset;
 * a false negative would leak state, so the text rule errs wide.
 */

/** SERVER_SESSION_STATE_CHANGED in the OK packet's status flags. */
export const SERVER_SESSION_STATE_CHANGED = 0x4000;

/** What the pool runs on each connection to turn the flag on (MariaDB >= 10.2, MySQL >= 5.7). */
export const TRACK_STATE_CHANGES = 'SET SESSION session_track_state_change = ON';

/** Why a session is dirty: the kind of state, never the statement text (it may hold secrets). */
export type DirtyReason =
  | 'session state changed'
  | 'LOCK TABLES'
  | 'GET_LOCK'
  | 'user variable'
  | 'temporary table'
  | 'HANDLER'
  | 'CALL';

/** One alternation per unflagged kind, tried once per statement while the session is clean. */
const UNFLAGGED_STATE =
  /(\block\s+tables?\b)|(\bget_lock\s*\()|(:=|\binto\s+@)|(\btemporary\b)|(^\s*handler\b)|(^\s*call\b)/i;
const REASONS: readonly DirtyReason[] = ['LOCK TABLES', 'GET_LOCK', 'user variable', 'temporary table', 'HANDLER', 'CALL'];

/**
 * Verdicts on recent statement texts: applications send the same few
 * statements again and again, and a Map lookup costs a fraction of the
 * unanchored regex scan. Short texts only (no bulk INSERT kept alive), and
 * cleared when full.
 */
const verdicts = new Map<string, DirtyReason | null>();
const VERDICTS_MAX = 512;
const VERDICT_TEXT_MAX = 512;

/** The kind of session state `sql` may leave behind with no status flag to show it, if any. */
export function unflaggedState(sql: string): DirtyReason | undefined {
  if (sql.length > VERDICT_TEXT_MAX) return scanUnflagged(sql);
  const known = verdicts.get(sql);
  if (known !== undefined) return known ?? undefined;
  const reason = scanUnflagged(sql);
  if (verdicts.size >= VERDICTS_MAX) verdicts.clear();
  verdicts.set(sql, reason ?? null);
  return reason;
}

function scanUnflagged(sql: string): DirtyReason | undefined {
  const match = UNFLAGGED_STATE.exec(sql);
  if (match === null) return undefined;
  for (let group = 1; group < match.length; group++) if (match[group] !== undefined) return REASONS[group - 1];
  return undefined;
}

/** The part of a mysql2 command `watchStateChanges` looks at (lib/commands/query.js). */
interface WatchedCommand {
  sql?: string;
  onResult?: (err: unknown, rows: unknown, fields: unknown) => void;
  on?(event: 'result', listener: (row: unknown) => void): unknown;
}

/**
 * Runs `emit` (the pool's `connection` event) and calls `onChanged` if a
 * statement that its listeners queued on `raw` meanwhile changes session
 * state: with `'whenDirty'`, such a change is lost at the connection's first
 * reset (it belongs in `initSql`). Only statements queued synchronously by
 * the listeners are seen, through mysql2's `addCommand` (one call, at connect).
 */
export function watchStateChanges(raw: object, emit: () => void, onChanged: () => void): void {
  const target = raw as { addCommand(command: WatchedCommand): unknown };
  const hadOwn = Object.hasOwn(target, 'addCommand');
  const original = target.addCommand;
  const watched = function (this: unknown, command: WatchedCommand): unknown {
    watchCommand(command, onChanged);
    return original.call(this, command);
  };
  target.addCommand = watched;
  try {
    emit();
  } finally {
    if (target.addCommand === watched) {
      if (hadOwn) target.addCommand = original;
      else delete (target as Partial<typeof target>).addCommand;
    }
  }
}

function watchCommand(command: WatchedCommand, onChanged: () => void): void {
  if (typeof command.sql === 'string' && unflaggedState(command.sql) !== undefined) {
    onChanged();
    return;
  }
  const check = (row: unknown): void => {
    const status = (row as { serverStatus?: unknown } | null)?.serverStatus;
    if (typeof status === 'number' && (status & SERVER_SESSION_STATE_CHANGED) !== 0) onChanged();
  };
  const onResult = command.onResult;
  if (typeof onResult === 'function') {
    command.onResult = (err, rows, fields) => {
      if (!err) for (const row of Array.isArray(rows) && Array.isArray(fields) ? rows : [rows]) check(row);
      onResult(err, rows, fields);
    };
  } else {
    command.on?.('result', check);
  }
}
