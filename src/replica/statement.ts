/**
 * The conservative statement check of read/write splitting: is this SQL text
 * *provably* read-only? No SQL parser: one pass of a small tokenizer that
 * understands just enough (comments, quoted strings and identifiers, words,
 * parentheses) to answer "yes" for plain SELECTs and "not proven" for
 * everything else. A wrong "not proven" costs a read on the primary; a wrong
 * "yes" would run a write on a replica, so every doubt counts as "not proven".
 *
 * Provably read-only (`readOnlyReason` returns undefined) means all of:
 * - it starts with SELECT (or WITH, for a CTE: MariaDB has no WITH ... UPDATE;
 *   MySQL's is caught by the keyword rule below);
 * - one statement: no `;`;
 * - no executable comment (`/*! ... *\/`, `/*M! ... *\/`: the server runs their content);
 * - no locking clause and no INTO: none of the words UPDATE, SHARE, LOCK
 *   (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE), INTO, INSERT, DELETE,
 *   PROCEDURE, nor NEXT/PREVIOUS VALUE FOR (a sequence);
 * - no user-variable assignment (`:=`);
 * - every function it calls is a built-in known to have no side effect and
 *   to need no particular server ({@link PURE_FUNCTIONS}): GET_LOCK,
 *   RELEASE_LOCK, NEXTVAL, SETVAL, LAST_INSERT_ID, FOUND_ROWS... are not on
 *   the list, and neither is any stored function (`f(...)`, `db.f(...)`,
 *   `` `f`(...) ``), which may write;
 * - no string literal with a backslash: whether it escapes the quote depends
 *   on the server's sql_mode (NO_BACKSLASH_ESCAPES), so where the string ends
 *   is not known for sure.
 *
 * The text checked is the statement template: `?` values are escaped by mysql2
 * and cannot add keywords.
 */

import { ReplicaWriteError } from '../errors';

/** The guard of a `refuseWrites` pool's connections: `ERR_REPLICA_WRITE` for what `replicaRefusal` refuses. */
export function refuseUnlessReadOnly(sql: string): ReplicaWriteError | undefined {
  const reason = replicaRefusal(sql);
  return reason === undefined ? undefined : new ReplicaWriteError(reason);
}

/** Why `sql` is not provably read-only, or undefined when it is (a plain SELECT). */
export function readOnlyReason(sql: string): string | undefined {
  return cached(readCache, sql, (text) => {
    const tokens = tokenize(text);
    if (typeof tokens === 'string') return tokens;
    return checkSelect(tokens);
  });
}

/**
 * What a connection that must never write (a replica's) refuses, or
 * undefined for what it may run: a provably read-only statement
 * (`readOnlyReason`), `SHOW ...`, and the transaction control the pool and
 * its transaction handles send (BEGIN / START TRANSACTION without READ WRITE,
 * COMMIT, ROLLBACK, SAVEPOINT, RELEASE SAVEPOINT, SET [SESSION] TRANSACTION
 * without READ WRITE, SET autocommit).
 */
export function replicaRefusal(sql: string): string | undefined {
  return cached(guardCache, sql, (text) => {
    const tokens = tokenize(text);
    if (typeof tokens === 'string') return tokens;
    const words = tokens.filter((token) => token.kind === 'word').map((token) => token.text);
    const first = words[0];
    switch (first) {
      case 'SELECT':
      case 'WITH':
        return checkSelect(tokens);
      case 'SHOW':
        return undefined;
      case 'BEGIN':
      case 'START':
        if (first === 'START' && words[1] !== 'TRANSACTION') return 'START statement';
        return words.includes('WRITE') ? 'READ WRITE' : undefined;
      case 'COMMIT':
      case 'ROLLBACK':
      case 'SAVEPOINT':
        return undefined;
      case 'RELEASE':
        return words[1] === 'SAVEPOINT' ? undefined : 'RELEASE statement';
      case 'SET': {
        let i = 1;
        if (words[i] === 'SESSION' || words[i] === 'LOCAL') i++;
        if (words[i] === 'TRANSACTION') return words.includes('WRITE') ? 'READ WRITE' : undefined;
        if (i === 1 && words[1] === 'AUTOCOMMIT' && words.length === 3) return undefined;
        return 'SET statement';
      }
      default:
        return first === undefined ? 'empty statement' : `${first} statement`;
    }
  });
}

type Token = { kind: 'word' | 'quoted' | 'punct'; text: string };

/** Words that make a SELECT not provably read-only wherever they appear (outside strings and quoted names). */
const FORBIDDEN_WORDS: ReadonlyMap<string, string> = new Map([
  ['UPDATE', 'FOR UPDATE'],
  ['SHARE', 'FOR SHARE / LOCK IN SHARE MODE'],
  ['LOCK', 'a locking clause'],
  ['INTO', 'INTO'],
  ['INSERT', 'INSERT'],
  ['DELETE', 'DELETE'],
  ['PROCEDURE', 'PROCEDURE'],
]);

/** Words that may stand before `(` without being a function call. */
const NOT_CALLS = new Set([
  'SELECT', 'FROM', 'JOIN', 'ON', 'USING', 'WHERE', 'AND', 'OR', 'XOR', 'NOT', 'IN', 'EXISTS', 'ANY', 'ALL',
  'SOME', 'AS', 'OVER', 'HAVING', 'WHEN', 'THEN', 'ELSE', 'CASE', 'BY', 'LIKE', 'BETWEEN', 'UNION', 'EXCEPT',
  'INTERSECT', 'DISTINCT', 'IS', 'INDEX', 'KEY', 'PARTITION', 'LATERAL', 'ROW', 'AGAINST', 'DIV', 'REGEXP',
  'RLIKE', 'ESCAPE', 'COLUMNS', 'WITH', 'RECURSIVE', 'VALUES',
  // types, in CAST(x AS DECIMAL(10, 2)) and CONVERT(x, CHAR(3))
  'BINARY', 'DECIMAL', 'DEC', 'NUMERIC', 'FLOAT', 'DOUBLE', 'REAL', 'VARCHAR', 'NCHAR', 'INT', 'INTEGER', 'DATETIME',
]);

/**
 * Built-in functions with no side effect that give the same answer on a
 * replica as on the primary (apart from the data's freshness). Not here on
 * purpose: GET_LOCK, RELEASE_LOCK, RELEASE_ALL_LOCKS, IS_FREE_LOCK,
 * IS_USED_LOCK (server-local locks), NEXTVAL, LASTVAL, SETVAL (sequences),
 * LAST_INSERT_ID, ROW_COUNT, FOUND_ROWS (the state of the session that wrote),
 * LOAD_FILE, BENCHMARK, UUID_SHORT, and every stored function.
 */
export const PURE_FUNCTIONS: ReadonlySet<string> = new Set(
  `COUNT SUM AVG MIN MAX GROUP_CONCAT JSON_ARRAYAGG JSON_OBJECTAGG BIT_AND BIT_OR BIT_XOR STD STDDEV STDDEV_POP
  STDDEV_SAMP VARIANCE VAR_POP VAR_SAMP ROW_NUMBER RANK DENSE_RANK NTILE LAG LEAD FIRST_VALUE LAST_VALUE NTH_VALUE
  PERCENT_RANK CUME_DIST MEDIAN PERCENTILE_CONT PERCENTILE_DISC
  IF IFNULL NULLIF COALESCE GREATEST LEAST ISNULL INTERVAL NVL NVL2
  ASCII BIN BIT_LENGTH CHAR CHAR_LENGTH CHARACTER_LENGTH CHR CONCAT CONCAT_WS ELT EXPORT_SET FIELD FIND_IN_SET
  FORMAT FROM_BASE64 HEX INSTR LCASE LEFT LENGTH LENGTHB LOCATE LOWER LPAD LTRIM MAKE_SET MID OCT OCTET_LENGTH ORD
  POSITION QUOTE REPEAT REPLACE REVERSE RIGHT RPAD RTRIM SOUNDEX SPACE STRCMP SUBSTR SUBSTRING SUBSTRING_INDEX
  TO_BASE64 TRIM UCASE UNHEX UPPER WEIGHT_STRING REGEXP_REPLACE REGEXP_INSTR REGEXP_SUBSTR REGEXP_LIKE CONVERT CAST
  CHARSET COLLATION COERCIBILITY NATURAL_SORT_KEY SFORMAT MATCH DEFAULT
  ABS ACOS ASIN ATAN ATAN2 CEIL CEILING CONV COS COT CRC32 DEGREES EXP FLOOR LN LOG LOG10 LOG2 MOD PI POW POWER
  RADIANS RAND ROUND SIGN SIN SQRT TAN TRUNCATE BIT_COUNT
  ADDDATE ADDTIME CONVERT_TZ CURDATE CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURTIME DATE DATE_ADD DATE_FORMAT
  DATE_SUB DATEDIFF DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR EXTRACT FROM_DAYS FROM_UNIXTIME GET_FORMAT HOUR
  LAST_DAY LOCALTIME LOCALTIMESTAMP MAKEDATE MAKETIME MICROSECOND MINUTE MONTH MONTHNAME NOW PERIOD_ADD PERIOD_DIFF
  QUARTER SEC_TO_TIME SECOND STR_TO_DATE SUBDATE SUBTIME SYSDATE TIME TIME_FORMAT TIME_TO_SEC TIMEDIFF TIMESTAMP
  TIMESTAMPADD TIMESTAMPDIFF TO_DAYS TO_SECONDS UNIX_TIMESTAMP UTC_DATE UTC_TIME UTC_TIMESTAMP WEEK WEEKDAY
  WEEKOFYEAR YEAR YEARWEEK
  JSON_ARRAY JSON_ARRAY_APPEND JSON_ARRAY_INSERT JSON_COMPACT JSON_CONTAINS JSON_CONTAINS_PATH JSON_DEPTH
  JSON_DETAILED JSON_EQUALS JSON_EXISTS JSON_EXTRACT JSON_INSERT JSON_KEYS JSON_LENGTH JSON_LOOSE JSON_MERGE
  JSON_MERGE_PATCH JSON_MERGE_PRESERVE JSON_NORMALIZE JSON_OBJECT JSON_OVERLAPS JSON_QUERY JSON_QUOTE JSON_REMOVE
  JSON_REPLACE JSON_SEARCH JSON_SET JSON_TABLE JSON_TYPE JSON_UNQUOTE JSON_VALID JSON_VALUE JSON_PRETTY
  UUID MD5 SHA SHA1 SHA2 COMPRESS UNCOMPRESS UNCOMPRESSED_LENGTH AES_ENCRYPT AES_DECRYPT INET_ATON INET_NTOA
  INET6_ATON INET6_NTOA IS_IPV4 IS_IPV6 VERSION DATABASE SCHEMA USER CURRENT_USER SESSION_USER SYSTEM_USER
  CONNECTION_ID SLEEP MASTER_GTID_WAIT MASTER_POS_WAIT`.split(/\s+/),
);

function checkSelect(tokens: Token[]): string | undefined {
  const first = tokens[0];
  if (first === undefined || first.kind !== 'word' || (first.text !== 'SELECT' && first.text !== 'WITH')) return 'not a SELECT';
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'word') {
      const forbidden = FORBIDDEN_WORDS.get(token.text);
      if (forbidden !== undefined) return forbidden;
      if (token.text === 'FOR' && tokens[i - 1]?.text === 'VALUE') return 'NEXT VALUE FOR (a sequence)';
    } else if (token.text === '(') {
      const callee = tokens[i - 1];
      if (callee === undefined || callee.kind === 'punct') continue;
      if (callee.kind === 'quoted') return 'calls a stored function';
      if (tokens[i - 2]?.text === '.') return `calls ${callee.text}() of a database (a stored function)`;
      if (!NOT_CALLS.has(callee.text) && !PURE_FUNCTIONS.has(callee.text)) return `calls ${callee.text}()`;
    }
  }
  return undefined;
}

/**
 * Words (upper-cased), quoted identifiers, and punctuation; comments and
 * string literals dropped. Returns a reason instead when the text cannot be
 * read with certainty, or holds what no read needs.
 */
function tokenize(sql: string): Token[] | string {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
    } else if (c === '#' || (c === '-' && sql[i + 1] === '-' && (i + 2 >= n || /\s/.test(sql[i + 2]!)))) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      if (sql[i + 2] === '!' || (sql[i + 2] === 'M' && sql[i + 3] === '!')) return 'an executable comment';
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) return 'an unterminated comment';
      i = end + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      // Doubled quotes escape; a backslash might (sql_mode), so a string holding one is not read.
      let j = i + 1;
      for (;;) {
        if (j >= n) return 'an unterminated quote';
        const d = sql[j]!;
        if (d === '\\' && c !== '`') return 'a backslash in a string literal';
        if (d === c) {
          if (sql[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      // A quoted name (backticks; double quotes under ANSI_QUOTES) before `(` would be a stored function call.
      tokens.push(c === "'" ? { kind: 'punct', text: "'" } : { kind: 'quoted', text: sql.slice(i + 1, j) });
      i = j + 1;
    } else if (isWordChar(c)) {
      let j = i + 1;
      while (j < n && isWordChar(sql[j]!)) j++;
      tokens.push({ kind: 'word', text: sql.slice(i, j).toUpperCase() });
      i = j;
    } else if (c === ';') {
      return 'several statements';
    } else if (c === ':' && sql[i + 1] === '=') {
      return 'assigns a user variable (:=)';
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

function isWordChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 95 || // _
    code === 36 || // $
    code > 127 // unquoted identifiers may use any non-ASCII letter
  );
}

/** Applications send the same few statement templates over and over: remember the verdicts (bounded). */
const CACHE_LIMIT = 2_000;
const readCache = new Map<string, string | undefined>();
const guardCache = new Map<string, string | undefined>();

function cached(cache: Map<string, string | undefined>, sql: string, check: (sql: string) => string | undefined): string | undefined {
  const hit = cache.get(sql);
  if (hit !== undefined || cache.has(sql)) return hit;
  const verdict = check(sql);
  if (sql.length <= 4_096) {
    if (cache.size >= CACHE_LIMIT) cache.clear(); // cheaper than LRU bookkeeping, and the working set refills at once
    cache.set(sql, verdict);
  }
  return verdict;
}
