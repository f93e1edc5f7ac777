// Writes the ES module faces over the CommonJS build (dist/index.mjs for
// `rollback-pool`, dist/mysql2/index.mjs for `rollback-pool/mysql2`,
// dist/sequelize/index.mjs for `rollback-pool/sequelize`), so that
// named imports (`import { createPool } from 'rollback-pool'`) work.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
for (const entry of ['index', 'mysql2/index', 'sequelize/index']) {
  const file = path.join(dist, `${entry}.js`);
  const names = Object.keys(require(file)).filter((n) => n !== '__esModule' && n !== 'default');
  const lines = [
    `import cjs from './${path.basename(file)}';`,
    `export const { ${names.join(', ')} } = cjs;`,
    'export default cjs;',
    '',
  ];
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), lines.join('\n'));
}
