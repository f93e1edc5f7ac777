/**
 * The published shape: `npm run build` produces dist/ with type declarations,
 * and both `require('rollback-pool')` and `import` work through the exports map.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');

beforeAll(() => {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'pipe' });
}, 60_000);

test('dist has the CommonJS build, the ES module entry and the declarations', () => {
  for (const file of ['index.js', 'index.mjs', 'index.d.ts', 'pool/pool.d.ts', 'tx/transaction.d.ts']) {
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
