/**
 * The table the client-library tests (Drizzle, Kysely, knex, the callback face)
 * write to: rows `(id, owner, n)` grouped by owner, created before the file's
 * tests and dropped after, with a side connection (another session) to look at
 * it from outside the pool under test.
 */
import { createConnection, type RowDataPacket } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import { mysqlUrl } from './db';

export interface OwnerTable {
  /** A connection outside the pool: what it sees is committed. */
  readonly side: Connection;
  /** The committed rows of `owner`, by id. */
  committed(owner: string): Promise<Array<{ id: number; n: number }>>;
}

/** Registers the file's table `name` (with `extraColumns` SQL, e.g. `, pad VARCHAR(600)`). */
export function ownerTable(name: string, extraColumns = ''): OwnerTable {
  const side = createConnection({ uri: mysqlUrl(), connectTimeout: 5_000 }).promise(); // commands wait for the handshake
  beforeAll(async () => {
    await side.query(`CREATE TABLE ${name} (id INT PRIMARY KEY, owner VARCHAR(32) NOT NULL, n INT NOT NULL DEFAULT 0${extraColumns}) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await side.query(`DROP TABLE IF EXISTS ${name}`);
    await side.end();
  });
  return {
    side,
    async committed(owner) {
      const [rows] = await side.query<RowDataPacket[]>(`SELECT id, n FROM ${name} WHERE owner = ? ORDER BY id`, [owner]);
      return rows.map((row) => ({ id: Number(row['id']), n: Number(row['n']) }));
    },
  };
}
