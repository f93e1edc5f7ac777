/**
 * The published shape: `npm run build` produces dist/ with type declarations,
 * and both `require('rollback-pool')` and `import` work through the exports map.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mysqlUrl } from './support/db';

const root = path.join(__dirname, '..');

beforeAll(() => {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'pipe' });
}, 60_000);

test('dist has the CommonJS build, the ES module entry and the declarations', () => {
  for (const file of ['index.js', 'index.mjs', 'index.d.ts', 'pool/pool.d.ts', 'tx/transaction.d.ts', 'mysql2/index.js', 'mysql2/index.mjs', 'mysql2/index.d.ts', 'sequelize/index.js', 'sequelize/index.mjs', 'sequelize/index.d.ts']) {
    expect(fs.existsSync(path.join(root, 'dist', file))).toBe(true);
  }
});

test('require() and import both resolve the package by name', () => {
  // Resolve by package name from the project itself (self-reference through "exports").
  const script = `
    const cjs = require('rollback-pool');
    import('rollback-pool').then((esm) => {
      console.log(JSON.stringify({
        cjs: typeof cjs.createPool, esm: typeof esm.createPool,
        errorsShared: esm.RollbackPoolError === cjs.RollbackPoolError,
      }));
    });
  `;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  expect(JSON.parse(out)).toEqual({ cjs: 'function', esm: 'function', errorsShared: true });
});

test('the framework adapters resolve as subpaths, with require() and import, without loading any framework', () => {
  const script = `
    const names = ['express', 'fastify', 'koa'];
    const cjs = names.map((name) => typeof require('rollback-pool/' + name).scope);
    Promise.all(names.map((name) => import('rollback-pool/' + name))).then((modules) => {
      const frameworks = Object.keys(require.cache).filter((file) => /node_modules[\\\\/](express|fastify|koa)[\\\\/]/.test(file));
      console.log(JSON.stringify({ cjs, esm: modules.map((m) => typeof m.scope), frameworks }));
    });
  `;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  expect(JSON.parse(out)).toEqual({ cjs: ['function', 'function', 'function'], esm: ['function', 'function', 'function'], frameworks: [] });
  for (const name of ['express', 'fastify', 'koa']) {
    expect(fs.existsSync(path.join(root, 'dist', 'scope', `${name}.d.ts`))).toBe(true);
  }
});

describe('rollback-pool/mysql2 and rollback-pool/sequelize from a consumer project (node_modules/rollback-pool, as npm installs it)', () => {
  let consumer: string;
  beforeAll(() => {
    consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-consumer-'));
    fs.mkdirSync(path.join(consumer, 'node_modules'));
    fs.symlinkSync(root, path.join(consumer, 'node_modules', 'rollback-pool'), 'dir');
    // npm hoists the dependency next to it
    fs.symlinkSync(fs.realpathSync(path.join(root, 'node_modules', 'mysql2')), path.join(consumer, 'node_modules', 'mysql2'), 'dir');
    // the consumer's own Sequelize, for rollback-pool/sequelize
    fs.symlinkSync(fs.realpathSync(path.join(root, 'node_modules', 'sequelize')), path.join(consumer, 'node_modules', 'sequelize'), 'dir');
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  });
  afterAll(() => {
    fs.rmSync(consumer, { recursive: true, force: true });
  });

  test("require() and import() resolve it by name: the same module, mysql2's Connection, a callback pool that runs a query", () => {
    const script = `
      const cjs = require('rollback-pool/mysql2');
      import('rollback-pool/mysql2').then(async (esm) => {
        const pool = esm.createPool({ uri: process.env.MYSQL_URL, connectionLimit: 1 });
        pool.query('SELECT 1 AS one', (err, rows) => {
          pool.end(() => console.log(JSON.stringify({
            cjs: typeof cjs.createPool, esm: typeof esm.createPool, same: esm.createPool === cjs.createPool && esm.default === cjs,
            connection: esm.Connection === require('mysql2').Connection && typeof esm.Connection.prototype.execute,
            promiseFace: pool.promise() instanceof require('rollback-pool').Pool,
            rows: err ? String(err) : rows,
          })));
        });
      });
    `;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: consumer, encoding: 'utf8', env: { ...process.env, MYSQL_URL: mysqlUrl() } });
    expect(JSON.parse(out)).toEqual({ cjs: 'function', esm: 'function', same: true, connection: 'function', promiseFace: true, rows: [{ one: 1 }] });
  });

  test('its types resolve, from CommonJS and from an ES module (tsc, node16 resolution)', () => {
    const code = (importLine: string): string => `${importLine}
const pool: mysql.Pool = mysql.createPool({ uri: 'mysql://root@127.0.0.1/test', connectionLimit: 1 });
pool.getConnection((err: Error | null, conn: mysql.PoolConnection) => {
  const rows: Promise<[mysql.RowDataPacket[], mysql.FieldPacket[]]> = conn.promise().query<mysql.RowDataPacket[]>('SELECT 1');
  conn.execute('SELECT ?', [1], (e: mysql.QueryError | null) => void e).setMaxListeners(0);
  void rows;
  void err;
});
const lone: mysql.Connection = mysql.createConnection({});
void lone.execute;
// @ts-expect-error: the types are real (not \`any\`): createPool takes options or a URL
mysql.createPool(42);
`;
    fs.writeFileSync(path.join(consumer, 'check.cts'), code("import mysql = require('rollback-pool/mysql2');"));
    fs.writeFileSync(path.join(consumer, 'check.mts'), code("import * as mysql from 'rollback-pool/mysql2';"));
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), 'check.cts', 'check.mts'];
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, ...args], { cwd: consumer, encoding: 'utf8' });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output).toBe('');
  }, 60_000);

  test('rollback-pool/sequelize: require() and import() resolve it, without loading Sequelize; it runs the consumer\'s Sequelize on our pool', () => {
    const script = `
      const cjs = require('rollback-pool/sequelize');
      const loadedSequelize = Object.keys(require.cache).some((file) => /node_modules[\\\\/]sequelize[\\\\/]/.test(file));
      import('rollback-pool/sequelize').then(async (esm) => {
        const { Sequelize, QueryTypes } = require('sequelize');
        const sequelize = new Sequelize(process.env.MYSQL_URL, { dialect: 'mysql', logging: false });
        const { pool } = esm.useRollbackPool(sequelize);
        const rows = await sequelize.query('SELECT 1 AS one', { type: QueryTypes.SELECT });
        await sequelize.close();
        console.log(JSON.stringify({
          cjs: typeof cjs.useRollbackPool, same: esm.useRollbackPool === cjs.useRollbackPool && esm.default === cjs,
          errorsShared: esm.UnsupportedVersionError === require('rollback-pool').UnsupportedVersionError,
          loadedSequelize, ours: pool instanceof require('rollback-pool').Pool && pool.closed, rows,
        }));
      });
    `;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: consumer, encoding: 'utf8', env: { ...process.env, MYSQL_URL: mysqlUrl() } });
    expect(JSON.parse(out)).toEqual({ cjs: 'function', same: true, errorsShared: true, loadedSequelize: false, ours: true, rows: [{ one: 1 }] });
  });

  test('rollback-pool/sequelize types resolve against the consumer\'s Sequelize (tsc, node16 resolution)', () => {
    const code = (importLine: string): string => `${importLine}
import { Sequelize } from 'sequelize';
const sequelize = new Sequelize('mysql://root@127.0.0.1/test', { dialect: 'mysql' });
const bound: rp.SequelizeRollbackPools = rp.useRollbackPool(sequelize, { transactionTimeoutMs: 30_000, leakDetectionMs: 10_000 });
const stats: number = bound.pool.stats().abandoned + bound.readPools.length;
const version: string = rp.SUPPORTED_SEQUELIZE_VERSIONS;
const error: rp.UnsupportedVersionError | undefined = undefined;
void stats; void version; void error;
// @ts-expect-error: the types are real (not \`any\`): it takes a Sequelize instance
rp.useRollbackPool(42);
// @ts-expect-error: and only its own options
rp.useRollbackPool(sequelize, { host: 'elsewhere' });
`;
    fs.writeFileSync(path.join(consumer, 'sequelize.cts'), code("import rp = require('rollback-pool/sequelize');"));
    fs.writeFileSync(path.join(consumer, 'sequelize.mts'), code("import * as rp from 'rollback-pool/sequelize';"));
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), 'sequelize.cts', 'sequelize.mts'];
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, ...args], { cwd: consumer, encoding: 'utf8' });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output).toBe('');
  }, 60_000);
});
