/**
 * Can a node serve? One statement answers it on any server: Galera's status
 * variables (`SHOW GLOBAL STATUS`, which a node that lost its primary
 * component still answers, unlike every table statement). A server without
 * Galera (MySQL, MariaDB with `wsrep_on = OFF`) reports no provider: it can
 * serve whenever it answers.
 *
 * On Galera a node can serve when `wsrep_ready = ON` and `wsrep_local_state =
 * 4` (Synced). Joining (1), Donor/Desynced (2: an rsync donor even blocks
 * writes while it sends), Joined (3: still applying what it missed) and
 * non-Primary (0) cannot.
 */
import type { Connection as RawConnection, QueryError } from 'mysql2';
import { NodeNotReadyError, type GaleraNodeState } from '../errors';

/** The readiness statement: answered on MySQL and MariaDB, Galera or not, primary component or not. */
export const HEALTH_SQL =
  "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_provider_name', 'wsrep_ready', 'wsrep_local_state', " +
  "'wsrep_local_state_comment', 'wsrep_cluster_status')";

/** `wsrep_local_state` of a node in sync with its primary component. */
const SYNCED = 4;

/** What a node said about itself. */
export interface NodeHealth {
  /** The server runs a wsrep provider (Galera). */
  readonly galera: boolean;
  /** Its Galera state (meaningful when `galera`). */
  readonly state: GaleraNodeState;
}

/** Reads the rows of `HEALTH_SQL`. */
export function readHealth(rows: unknown): NodeHealth {
  const values = new Map<string, string>();
  if (Array.isArray(rows)) {
    for (const row of rows as Array<Record<string, unknown>>) values.set(String(row['Variable_name']).toLowerCase(), String(row['Value'] ?? ''));
  }
  const state: GaleraNodeState = {
    ready: values.get('wsrep_ready') === 'ON',
    localState: Number(values.get('wsrep_local_state') ?? -1),
    stateComment: values.get('wsrep_local_state_comment') ?? '',
    clusterStatus: values.get('wsrep_cluster_status') ?? '',
  };
  return { galera: (values.get('wsrep_provider_name') ?? '') !== '', state };
}

/** True when the node can take reads and writes now. */
export function canServe(health: NodeHealth): boolean {
  if (!health.galera) return true;
  const { ready, localState, clusterStatus } = health.state;
  return ready && localState === SYNCED && clusterStatus === 'Primary';
}

/** Short words for events and stats: `Synced, Primary` or `wsrep_ready OFF, Initialized (0), non-Primary`. */
export function describeHealth(health: NodeHealth): string {
  if (!health.galera) return 'answers (no Galera)';
  const { ready, localState, stateComment, clusterStatus } = health.state;
  if (canServe(health)) return `${stateComment || 'Synced'}, ${clusterStatus}`;
  return `wsrep_ready ${ready ? 'ON' : 'OFF'}, ${stateComment || 'unknown'} (${localState}), ${clusterStatus || 'unknown'}`;
}

/** Runs the readiness statement on a raw mysql2 connection (a new one, before the pool uses it). */
export function queryHealth(raw: RawConnection): Promise<NodeHealth> {
  return new Promise((resolve, reject) => {
    raw.query(HEALTH_SQL, (error: QueryError | null, rows: unknown) => (error ? reject(error) : resolve(readHealth(rows))));
  });
}

/** The error that refuses a connection to a node that cannot serve. */
export function notReady(health: NodeHealth): NodeNotReadyError {
  return new NodeNotReadyError(health.state);
}
