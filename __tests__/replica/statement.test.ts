/**
 * The conservative statement check of read/write splitting (no server
 * needed): what may go to a replica, and what a replica connection refuses.
 */
import { readOnlyReason } from '../../src/index';
import { replicaRefusal } from '../../src/replica/statement';

const provablyReadOnly = [
  'SELECT 1',
  'select id, v from t where id = ?',
  '  SELECT * FROM t WHERE note = \'for update\'', // words inside strings do not count
  'SELECT `update` FROM t', // nor quoted names
  'SELECT COUNT(*), MAX(v), CONCAT(a, b), JSON_EXTRACT(j, \'$.a\') FROM t GROUP BY a',
  'SELECT CAST(v AS DECIMAL(10, 2)), CONVERT(v, CHAR(3)) FROM t',
  'SELECT * FROM t WHERE id IN (SELECT id FROM u) AND EXISTS (SELECT 1)',
  'WITH x AS (SELECT 1 AS a) SELECT a FROM x',
  '/* traced */ SELECT 1 -- trailing comment\n',
  'SELECT @@server_id, @x',
  'SELECT MASTER_GTID_WAIT(?, ?) AS w',
  'SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t',
  "SELECT 'it''s'",
];

const notProven: Array<[string, string]> = [
  ['INSERT INTO t VALUES (1)', 'not a SELECT'],
  ['SELECT * FROM t FOR UPDATE', 'FOR UPDATE'],
  ['SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE', 'a locking clause'],
  ['SELECT * FROM t FOR SHARE', 'FOR SHARE / LOCK IN SHARE MODE'],
  ['SELECT v INTO @v FROM t', 'INTO'],
  ['SELECT * FROM t INTO OUTFILE \'/tmp/x\'', 'INTO'],
  ['SELECT @x := 1', 'assigns a user variable (:=)'],
  ["SELECT GET_LOCK('a', 0)", 'calls GET_LOCK()'],
  ["SELECT RELEASE_LOCK('a')", 'calls RELEASE_LOCK()'],
  ['SELECT NEXTVAL(s)', 'calls NEXTVAL()'],
  ['SELECT NEXT VALUE FOR s', 'NEXT VALUE FOR (a sequence)'],
  ['SELECT LAST_INSERT_ID(5)', 'calls LAST_INSERT_ID()'],
  ['SELECT my_function(1)', 'calls MY_FUNCTION()'],
  ['SELECT test.concat(1)', 'calls CONCAT() of a database (a stored function)'],
  ['SELECT `f`(1)', 'calls a stored function'],
  ['SELECT 1; DELETE FROM t', 'several statements'],
  ['SELECT 1 /*! FOR UPDATE */', 'an executable comment'],
  ['SELECT 1 /*M! FOR UPDATE */', 'an executable comment'],
  ["SELECT 'a\\' FOR UPDATE -- '", 'a backslash in a string literal'],
  ["SELECT 'unterminated", 'an unterminated quote'],
  ['(SELECT 1)', 'not a SELECT'],
  ['', 'not a SELECT'],
];

test('plain SELECTs are provably read-only', () => {
  for (const sql of provablyReadOnly) expect([sql, readOnlyReason(sql)]).toEqual([sql, undefined]);
});

test('everything else is not, with the reason', () => {
  for (const [sql, reason] of notProven) expect([sql, readOnlyReason(sql)]).toEqual([sql, reason]);
});

test('a replica connection also takes SHOW and the transaction control the pool sends, nothing else', () => {
  const allowed = [
    'SHOW SLAVE STATUS', 'START TRANSACTION', 'START TRANSACTION READ ONLY', 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY',
    'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT rp_1', 'RELEASE SAVEPOINT rp_1', 'ROLLBACK TO SAVEPOINT rp_1',
    'SET TRANSACTION ISOLATION LEVEL READ COMMITTED', 'SET SESSION TRANSACTION READ ONLY', 'SET autocommit=1', 'SELECT 1',
  ];
  for (const sql of allowed) expect([sql, replicaRefusal(sql)]).toEqual([sql, undefined]);
  const refused: Array<[string, string]> = [
    ['START TRANSACTION READ WRITE', 'READ WRITE'],
    ['SET SESSION TRANSACTION READ WRITE', 'READ WRITE'],
    ['SET GLOBAL read_only = 0', 'SET statement'],
    ['SET @@global.autocommit = 0', 'SET statement'],
    ['XA START \'x\'', 'XA statement'],
    ['CREATE TABLE x (id INT)', 'CREATE statement'],
    ['DELETE FROM t', 'DELETE statement'],
    ['SELECT * FROM t FOR UPDATE', 'FOR UPDATE'],
    ['COMMIT; DROP TABLE t', 'several statements'],
  ];
  for (const [sql, reason] of refused) expect([sql, replicaRefusal(sql)]).toEqual([sql, reason]);
});
