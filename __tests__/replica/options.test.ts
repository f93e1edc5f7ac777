/**
 * createReplicaPool's options and what it shows of itself, without servers:
 * both "servers" are a closed loopback port, so every connect is refused.
 */
import { inspect } from 'node:util';
import { createPool, createReplicaPool, hasCode, type ReplicaHealthEvent } from '../../src/index';

const SECRET = 's3cr3t-Pa55word';
const nowhere = `mysql://root:${SECRET}@127.0.0.1:1/test`;

test('bad options are refused by name, before anything connects', () => {
  const bad: Array<[object, string]> = [
    [{ primary: nowhere }, 'replicas'],
    [{ primary: nowhere, replicas: [] }, 'replicas'],
    [{ primary: nowhere, replicas: [nowhere], readYourWrites: 'always' }, 'readYourWrites'],
    [{ primary: nowhere, replicas: [nowhere], maxLagMs: 0 }, 'maxLagMs'],
    [{ primary: nowhere, replicas: [nowhere], healthCheck: 5 }, 'healthCheck'],
    [{ primary: nowhere, replicas: [{ uri: nowhere, conectionLimit: 2 }] }, 'conectionLimit'],
  ];
  for (const [options, option] of bad) {
    let error: unknown;
    try {
      createReplicaPool(options as never);
    } catch (e) {
      error = e;
    }
    expect([option, hasCode(error, 'ERR_INVALID_OPTION'), (error as { option?: string }).option]).toEqual([option, true, option]);
  }
  // A reset re-applies their session settings: the combination is allowed.
  expect(() => createPool({ uri: nowhere, refuseWrites: true, resetOnRelease: 'whenDirty' })).not.toThrow();
  expect(() => createPool({ uri: nowhere, trackGtid: 'yes' as never })).toThrow(expect.objectContaining({ option: 'trackGtid' }));
});

test('an unreachable replica is broken and reads fall back; no password in health, events, errors or inspect output', async () => {
  const pool = createReplicaPool({ primary: nowhere, replicas: [nowhere, { uri: nowhere }], healthCheckMs: 100 });
  const events: ReplicaHealthEvent[] = [];
  pool.on('health', (event) => events.push(event));
  try {
    await pool.ready();
    expect(pool.health().map((replica) => replica.state)).toEqual(['broken', 'broken']);
    expect(pool.health()[0]!.reason).toContain('ECONNREFUSED');
    const error = await pool.query('SELECT 1').then(() => undefined, (e: unknown) => e); // no replica: the primary, refused too
    expect((error as { code?: string }).code).toBe('ECONNREFUSED');
    expect(pool.stats().reads.fallback).toBe(1);
    const shown = [
      inspect(pool, { depth: 10 }),
      JSON.stringify(pool),
      JSON.stringify(pool.health()),
      JSON.stringify(events),
      inspect(pool.replica({ after: '0-1-5' }), { depth: 10 }),
      JSON.stringify(pool.replica()),
      String(error),
      JSON.stringify(pool.stats()),
    ].join('\n');
    expect(shown).not.toContain(SECRET);
    expect(shown).toContain('127.0.0.1');
  } finally {
    await pool.end();
  }
  expect(pool.health().map((replica) => replica.state)).toEqual(['closed', 'closed']);
});
