// Client instructions per operation, repeatable on a loaded machine: runs a
// workload under valgrind's callgrind twice (N and 3N operations after the same
// warm-up) and divides the difference in instructions by 2N, so that start-up,
// warm-up and the JIT's first compiles cancel out. Only this process's user-space
// instructions are counted (not the kernel's socket work, not the server).
//
//   node bench/instructions.js <target> <workload> <concurrency> <connectionLimit> [N]
//
// N defaults to 5000. Smaller N is not safe: at N = 1500 the JIT's tier-ups
// (valgrind slows the process, not V8's call-count budgets) still fall inside
// the difference, and mysql2's pool.execute at 32 callers on 8 connections
// counted 22,394 instructions/op against 45,432 at N = 5000 (ours 59,603 and
// 45,031): a 2.7x "gap" that was the instrument's.
//
// target: a directory holding a compiled rollback-pool (e.g. dist), or mysql2, or
// mariadb. workload: execute | checkout | transaction | poolTransaction | abandon
// | explicit. RP_TRACE=0 turns mysql2's `trace` off; RP_WHEN_DIRTY=1 runs ours with
// resetOnRelease 'whenDirty'. Plain JavaScript (no tsx), so that valgrind runs only the code
// measured. `--child` is the run itself (used by the parent).
'use strict';
const { execFileSync } = require('node:child_process');
const { readFileSync, rmSync } = require('node:fs');
const { resolve } = require('node:path');

const [target = 'dist', workload = 'execute', concArg = '32', limitArg = '8', nArg = '5000'] = process.argv.slice(2).filter((a) => a !== '--child');
const url = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const WARM = 3000;

if (process.argv.includes('--child')) {
  child(Number(process.env.RP_OPS)).catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
} else {
  const n = Number(nArg);
  const counts = [n, 3 * n].map((ops) => {
    const out = `/tmp/rp-ir-${process.pid}-${ops}.out`;
    execFileSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--single-threaded', __filename, '--child', target, workload, concArg, limitArg], {
      env: { ...process.env, RP_OPS: String(ops) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const summary = /^summary:\s+(\d+)/m.exec(readFileSync(out, 'utf8'));
    rmSync(out, { force: true });
    return Number(summary[1]);
  });
  const variant = `${process.env.RP_TRACE === "0" ? " trace:false" : ""}${process.env.RP_WHEN_DIRTY === "1" ? " whenDirty" : ""}`;
  console.log(`${target}${variant} ${workload} c=${concArg} limit=${limitArg}: ${Math.round((counts[1] - counts[0]) / (2 * n)).toLocaleString('en-US')} instructions/op`);
}

async function child(ops) {
  const mysql2 = require('mysql2/promise');
  const side = await mysql2.createConnection({ uri: url });
  const table = `rp_ir_${process.pid}`;
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} (id, v) VALUES ?`, [Array.from({ length: 1000 }, (_, i) => [i + 1, i])]);
  await side.query(`CREATE TABLE ${table}_log (id BIGINT PRIMARY KEY, who TINYINT NOT NULL, abandoned TINYINT NOT NULL) ENGINE=InnoDB`);
  const connectionLimit = Number(limitArg);
  // RP_TRACE=0: mysql2's `trace: false` (no stack captured per statement), on every target.
  const trace = process.env.RP_TRACE !== '0';
  let pool;
  let ours = false;
  if (target === 'mysql2') pool = mysql2.createPool({ uri: url, connectionLimit, trace });
  else if (target === 'mariadb') {
    const { hostname, port, username, pathname } = new URL(url);
    pool = require('mariadb').createPool({ host: hostname, port: Number(port || 3306), user: username, database: pathname.slice(1), connectionLimit });
  } else {
    ours = true;
    // RP_WHEN_DIRTY=1: rollback-pool with resetOnRelease 'whenDirty'.
    const hygiene = process.env.RP_WHEN_DIRTY === '1' ? { resetOnRelease: 'whenDirty' } : {};
    pool = require(resolve(target, 'index.js')).createPool({ uri: url, connectionLimit, trace, ...hygiene });
  }
  const select = `SELECT id, v FROM ${table} WHERE id = ?`;
  const update = `UPDATE ${table} SET v = v + 1 WHERE id = ?`;
  // As in the bench's abandon workload: one INSERT of a unique row per transaction (no lock waits).
  const insert = `INSERT INTO ${table}_log (id, who, abandoned) VALUES (?, 1, 0)`;
  let nextId = 1;
  const op = {
    execute: (id) => pool.execute(select, [id]),
    checkout: async (id) => {
      const conn = await pool.getConnection();
      try {
        await conn.execute(select, [id]);
      } finally {
        conn.release();
      }
    },
    transaction: async (id) => {
      const conn = await pool.getConnection();
      try {
        await conn.beginTransaction();
        await conn.execute(select, [id]);
        await conn.commit();
      } finally {
        conn.release();
      }
    },
    poolTransaction: async (id) => {
      if (ours) {
        await pool.transaction(async (tx) => {
          await tx.execute(select, [id]);
          await tx.execute(update, [id]);
        });
        return;
      }
      const conn = await pool.getConnection();
      try {
        await conn.beginTransaction();
        await conn.execute(select, [id]);
        await conn.execute(update, [id]);
        await conn.commit();
      } finally {
        conn.release();
      }
    },
    abandon: async (id) => abandonOp(id, true),
    explicit: async (id) => abandonOp(id, false),
  }[workload];
  async function abandonOp(id, abandon) {
    const key = nextId++;
    if (ours) {
      const tx = await pool.begin();
      await tx.execute(insert, [key]);
      if (key % 5 === 4) {
        if (abandon) tx[Symbol.dispose]();
        else await tx.rollback();
        return;
      }
      await tx.commit();
      return;
    }
    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      await conn.execute(insert, [key]);
      if (key % 5 === 4) await conn.rollback();
      else await conn.commit();
    } finally {
      conn.release();
    }
  }
  const concurrency = Number(concArg);
  const runOps = async (total) => {
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        await op(((i * 7) % 1000) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await runOps(WARM);
  await runOps(ops);
  if (ours && (workload === 'abandon')) {
    while (pool.stats().rolledBack < pool.stats().abandoned) await new Promise((r) => setTimeout(r, 5));
  }
  await pool.end();
  await side.query(`DROP TABLE ${table}`);
  await side.query(`DROP TABLE ${table}_log`);
  await side.end();
}
