/**
 * A private 3-node MariaDB Galera cluster on loopback, for the cluster tests
 * (`__tests__/galera/`) and `npm run soak -- --cluster`.
 *
 * Each node is a `mariadbd` of its own: its own data directory under one
 * temporary directory, free loopback ports (client, gcomm, IST, SST), rsync
 * SST. Only the first node's data directory is initialised
 * (`mariadb-install-db`); the others start empty and receive it by SST, which
 * is faster than three initialisations. Run as root, every `mariadbd` runs as
 * the `mysql` user (`--user=mysql`): the rsync SST script refuses to run as
 * root ("Permission denied (13)"), and the directories are owned by `mysql`.
 *
 * Nothing here sleeps blindly: every step polls the nodes' own wsrep status
 * until the state it waits for holds (or a bound passes, with the log tail).
 *
 *   node:  stopped ──start()──▶ joining ──IST/SST, synced──▶ synced
 *          synced ──kill() (SIGKILL)──▶ stopped        (the others evict it after evs.suspect_timeout;
 *                                                       start() recovers its position, then IST)
 *          synced ──isolate()──▶ nonPrimary ──rejoin()──▶ synced
 *          nonPrimary (quorum lost) ──bootstrap()──▶ synced (a primary component of its own)
 *
 * Faults the tests inject: SIGKILL of a node and its restart (IST rejoin), a
 * node partitioned away with `gmcast.isolate=1` (it stays up, answers, and
 * refuses every table statement with 1047), quorum loss (two of three killed:
 * the survivor goes non-Primary) and `pc.bootstrap=YES` on the survivor.
 *
 * Importing this module has no side effects; `npx tsx scripts/galera.ts` starts a
 * cluster, prints its URLs and stops it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chownSync, closeSync, constants, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { findExecutable, findMariadbd, runToCompletion, tail } from './server';

/** Where Debian's galera-4 package puts the provider. */
export const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';

/** `wsrep_local_state` 4: Synced (1 Joining, 2 Donor/Desynced, 3 Joined). */
const SYNCED = 4;

/** Bounds of each step (not waits: every step polls and returns as soon as its condition holds). */
const START_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 50;

/**
 * Failure detection tuned for a loopback test cluster: a killed node is
 * evicted after about 1.5 s instead of 5 s (the defaults are made for real
 * networks). The survivors' replication pauses until the eviction, so this
 * bounds how long writes on healthy nodes can stall after a SIGKILL.
 */
const EVS_OPTIONS = [
  'evs.keepalive_period=PT0.5S',
  'evs.inactive_check_period=PT0.5S',
  'evs.suspect_timeout=PT2S',
  'evs.inactive_timeout=PT4S',
  'evs.install_timeout=PT4S',
  'pc.announce_timeout=PT1S',
  'gcache.size=64M',
];

/** What the nodes report about themselves (`SHOW GLOBAL STATUS LIKE 'wsrep_%'`). */
export interface GaleraNodeStatus {
  /** `wsrep_ready`: the node accepts queries. */
  ready: boolean;
  /** `wsrep_local_state`: 4 is Synced. */
  localState: number;
  /** `wsrep_local_state_comment`: Synced, Donor/Desynced, Joining, Initialized... */
  stateComment: string;
  /** `wsrep_cluster_status`: Primary, non-Primary or Disconnected. */
  clusterStatus: string;
  /** `wsrep_cluster_size`: members of the component this node is in. */
  clusterSize: number;
}

/** One mariadbd of the cluster. */
export interface GaleraNode {
  /** 0, 1, 2. */
  readonly index: number;
  /** `g1`, `g2`, `g3` (its `wsrep_node_name`). */
  readonly name: string;
  /** Its client port on 127.0.0.1. */
  readonly port: number;
  /** `mysql://root@127.0.0.1:<port>/test`. */
  readonly url: string;
  /** True while its process runs. */
  readonly running: boolean;
  /** SIGKILL (a crash); returns once the process is gone. The data directory is kept. */
  kill(): Promise<void>;
  /** Starts it again on its data directory (it rejoins by IST, or SST); returns once it is synced. */
  start(): Promise<void>;
  /** `gmcast.isolate=1`: cut from the others while still up; returns once it is non-Primary and the others have evicted it. */
  isolate(): Promise<void>;
  /** `gmcast.isolate=0`: back into the cluster; returns once it is synced again. */
  rejoin(): Promise<void>;
  /** `pc.bootstrap=YES` on a node that lost quorum: it forms a primary component of its own; returns once it serves. */
  bootstrap(): Promise<void>;
  /** Its wsrep status, or undefined when it does not answer. */
  status(): Promise<GaleraNodeStatus | undefined>;
}

/** A running cluster: stop it with `stop()` (always, also after a failure). */
export interface GaleraCluster {
  readonly nodes: readonly GaleraNode[];
  /** The nodes' URLs, in order. */
  readonly urls: readonly string[];
  /** How long the cold start took. */
  readonly startedInMs: number;
  /** Returns once every running node is synced, Primary, and sees all running nodes. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Polls `check` until it holds; throws (with the nodes' status and log tails) after `timeoutMs`. */
  until(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void>;
  /** Kills every node and deletes the data directories. Never rejects; a second call does nothing. */
  stop(): Promise<void>;
}

export interface GaleraClusterOptions {
  /** Nodes (default 3). */
  size?: number;
  /** Bound of the cold start (default 60 s). */
  timeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * Why a Galera cluster cannot be started here, naming what is missing (the
 * package to install), or undefined when everything is in place.
 */
export function galeraMissing(): string | undefined {
  const missing: string[] = [];
  if (findMariadbd() === undefined) missing.push('mariadbd (apt-get install -y mariadb-server)');
  if (!executable(GALERA_PROVIDER)) missing.push(`${GALERA_PROVIDER} (apt-get install -y galera-4)`);
  if (findExecutable(['rsync'], ['/usr/bin', '/bin']) === undefined) missing.push('rsync (apt-get install -y rsync)');
  if (findExecutable(['wsrep_sst_rsync'], ['/usr/bin', '/usr/sbin']) === undefined) missing.push('wsrep_sst_rsync (apt-get install -y mariadb-server)');
  if (findExecutable(['ss', 'lsof', 'sockstat'], ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) === undefined) {
    missing.push('ss or lsof, used by the rsync SST script (apt-get install -y iproute2)');
  }
  if (process.getuid?.() === 0 && mysqlUser() === undefined) missing.push('a `mysql` system user to run mariadbd as (apt-get install -y mariadb-server)');
  return missing.length === 0 ? undefined : `missing: ${missing.join('; ')}`;
}

/** Starts a cluster of `size` nodes (default 3) and returns once all are synced. */
export async function startGaleraCluster(options: GaleraClusterOptions = {}): Promise<GaleraCluster> {
  const missing = galeraMissing();
  if (missing !== undefined) throw new Error(`Cannot start a Galera cluster: ${missing}`);
  // Ports are checked free when picked, and bound seconds later: another process may take one first.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !String(error).includes('Address already in use')) throw error;
      options.log?.('a port was taken meanwhile: starting again on other ports');
    }
  }
}

async function startOnce(options: GaleraClusterOptions): Promise<Cluster> {
  const size = options.size ?? 3;
  const log = options.log ?? ((): void => undefined);
  const startedAt = Date.now();
  const baseDir = await mkdtemp(join(tmpdir(), 'rp-galera-'));
  const owner = process.getuid?.() === 0 ? mysqlUser() : undefined;
  const cluster = new Cluster(baseDir, owner, await freePorts(size * 4), size, startedAt);
  try {
    if (owner !== undefined) chownSync(baseDir, owner.uid, owner.gid);
    for (const node of cluster.members) node.prepareDirectories();
    const bound = options.timeoutMs ?? START_TIMEOUT_MS;
    const [first, ...others] = cluster.members as [Member, ...Member[]];
    log('initialising the first node\'s data directory...');
    await first.install();
    // Bootstrapped once and shut down cleanly, its data directory (with the cluster's state id and
    // position) is copied to the others: then each joins by IST of the few write sets since (about
    // 2 s), instead of one rsync SST of everything after the other (4 s each, the donor blocked meanwhile).
    log('bootstrapping the first node once, to copy its state...');
    await first.launch(true);
    await first.waitServing(bound);
    await first.sql('CREATE DATABASE IF NOT EXISTS test');
    await first.halt();
    for (const node of others) node.copyDataFrom(first);
    log('starting the cluster...');
    await first.launch(true);
    await first.waitServing(bound);
    for (const node of others) {
      await node.launch(false);
      await node.waitServing(bound);
    }
    await cluster.waitHealthy(bound);
    cluster.startedInMs = Date.now() - startedAt;
    log(`cluster of ${size} synced in ${cluster.startedInMs} ms`);
    return cluster;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

interface Owner {
  uid: number;
  gid: number;
}

class Cluster implements GaleraCluster {
  readonly members: Member[];
  startedInMs = 0;
  private stopped = false;
  readonly name: string;

  constructor(
    readonly baseDir: string,
    readonly owner: Owner | undefined,
    ports: number[],
    size: number,
    readonly startedAt: number,
  ) {
    this.name = `rp-${process.pid}-${startedAt}`;
    const gcomm = (i: number): number => ports[i * 4 + 1]!;
    const address = `gcomm://${Array.from({ length: size }, (_, i) => `127.0.0.1:${gcomm(i)}`).join(',')}`;
    this.members = Array.from({ length: size }, (_, i) =>
      new Member(this, i, { client: ports[i * 4]!, gcomm: gcomm(i), ist: ports[i * 4 + 2]!, sst: ports[i * 4 + 3]! }, address));
    registerExitHook();
    live.add(this);
  }

  get nodes(): readonly GaleraNode[] {
    return this.members;
  }

  get urls(): readonly string[] {
    return this.members.map((m) => m.url);
  }

  async waitHealthy(timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    await this.until(timeoutMs, 'every running node synced in one primary component', async () => {
      const running = this.members.filter((m) => m.running);
      if (running.length === 0) return false;
      const statuses = await Promise.all(running.map((m) => m.status()));
      return statuses.every((s) => s !== undefined && s.ready && s.localState === SYNCED && s.clusterStatus === 'Primary' && s.clusterSize === running.length);
    });
  }

  /** Polls `check` until it holds; throws (with the nodes' log tails) after `timeoutMs`. */
  async until(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.stopped) throw new Error('the Galera cluster was stopped');
      if (await check()) return;
      if (Date.now() > deadline) {
        const tails = await Promise.all(this.members.map(async (m) => `${m.name}: ${JSON.stringify(await m.status())}\n${await tail(m.logFile)}`));
        throw new Error(`Galera: not ${what} within ${timeoutMs} ms\n${tails.join('\n')}`);
      }
      await sleep(POLL_MS);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => m.halt()));
    if (process.env.RP_GALERA_KEEP === undefined) await rm(this.baseDir, { recursive: true, force: true, maxRetries: 5 }).catch(() => undefined);
    live.delete(this);
  }

  /** Synchronous last resort at process exit. */
  abandon(): void {
    for (const m of this.members) m.abandon();
    rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 5 });
  }
}

interface Ports {
  client: number;
  gcomm: number;
  ist: number;
  sst: number;
}

class Member implements GaleraNode {
  readonly name: string;
  readonly url: string;
  private readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Killed: its saved position is lost; `start()` recovers it first. */
  private crashed = false;

  constructor(
    private readonly cluster: Cluster,
    readonly index: number,
    private readonly ports: Ports,
    private readonly address: string,
  ) {
    this.name = `g${index + 1}`;
    this.url = `mysql://root@127.0.0.1:${ports.client}/test`;
    this.dir = join(cluster.baseDir, this.name);
    this.dataDir = join(this.dir, 'data');
    this.logFile = join(this.dir, 'server.log');
  }

  get port(): number {
    return this.ports.client;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  prepareDirectories(): void {
    mkdirSync(this.dataDir, { recursive: true });
    // A tmpdir of its own, for mariadb-install-db too: servers starting at once in a shared /tmp trip
    // over each other's temporary files ("Could not remove temporary table", then abort).
    mkdirSync(this.tmpDir, { recursive: true });
    const owner = this.cluster.owner;
    if (owner !== undefined) {
      for (const dir of [this.dir, this.dataDir, this.tmpDir]) chownSync(dir, owner.uid, owner.gid);
    }
  }

  private get tmpDir(): string {
    return join(this.dir, 'tmp');
  }

  async install(): Promise<void> {
    const mariadbd = findMariadbd()!;
    const installDb = findExecutable(['mariadb-install-db', 'mysql_install_db'], [dirname(mariadbd), '/usr/bin', '/usr/sbin']);
    if (installDb === undefined) throw new Error('mariadb-install-db not found');
    await runToCompletion(installDb, ['--no-defaults', `--datadir=${this.dataDir}`, '--auth-root-authentication-method=normal',
      '--skip-test-db', '--skip-name-resolve', `--tmpdir=${this.tmpDir}`, ...this.userArgs()], join(this.dir, 'install.log'));
  }

  /** A copy of `source`'s (stopped) data directory, ownership kept. */
  copyDataFrom(source: Member): void {
    rmSync(this.dataDir, { recursive: true, force: true });
    const copied = spawnSync('cp', ['-a', source.dataDir, this.dataDir], { encoding: 'utf8' });
    if (copied.status !== 0) throw new Error(`cp -a ${source.dataDir} ${this.dataDir} failed: ${copied.stderr}`);
  }

  /** The server's arguments (without the start position or `--wsrep-new-cluster`). */
  private serverArgs(): string[] {
    const provider = [`gmcast.listen_addr=tcp://127.0.0.1:${this.ports.gcomm}`, `ist.recv_addr=127.0.0.1:${this.ports.ist}`, ...EVS_OPTIONS].join('; ');
    return ['--no-defaults', `--datadir=${this.dataDir}`, `--port=${this.ports.client}`, '--bind-address=127.0.0.1',
      `--socket=${join(this.dir, 'mysqld.sock')}`, `--pid-file=${join(this.dir, 'mysqld.pid')}`, `--tmpdir=${this.tmpDir}`,
      '--skip-name-resolve', '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci',
      '--innodb-buffer-pool-size=64M', '--innodb-log-file-size=48M', '--max-connections=300', ...this.userArgs(),
      '--wsrep_on=ON', `--wsrep_provider=${GALERA_PROVIDER}`, `--wsrep_cluster_address=${this.address}`,
      `--wsrep_cluster_name=${this.cluster.name}`, `--wsrep_node_name=${this.name}`, '--wsrep_node_address=127.0.0.1',
      `--wsrep_node_incoming_address=127.0.0.1:${this.ports.client}`,
      `--wsrep_provider_options=${provider}`, `--wsrep_sst_receive_address=127.0.0.1:${this.ports.sst}`,
      '--wsrep_sst_method=rsync', '--binlog_format=ROW', '--innodb_autoinc_lock_mode=2', '--default-storage-engine=InnoDB'];
  }

  /**
   * After a crash the saved position is unknown (`seqno: -1`), and a node
   * that does not know where it stands gets a full SST. `--wsrep-recover`
   * reads it back from InnoDB (what systemd's galera_recovery does); started
   * with it, the node asks for IST of what it missed only.
   */
  private async recoverPosition(): Promise<string | undefined> {
    const log = join(this.dir, 'recover.log');
    await runToCompletion(findMariadbd()!, [...this.serverArgs(), '--wsrep-recover', `--log-error=${log}`], join(this.dir, 'recover.out'));
    const text = await readFile(log, 'utf8').catch(() => '');
    const found = [...text.matchAll(/WSREP: Recovered position: ([0-9a-f-]{36}:-?\d+)/g)].pop();
    return found?.[1];
  }

  /** Spawns mariadbd (does not wait for it). */
  async launch(newCluster: boolean, startPosition?: string): Promise<void> {
    if (this.child !== undefined) return;
    const fd = openSync(this.logFile, 'a');
    const args = [...this.serverArgs(), ...(startPosition !== undefined ? [`--wsrep_start_position=${startPosition}`] : []),
      ...(newCluster ? ['--wsrep-new-cluster'] : [])];
    const child = spawn(findMariadbd()!, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref(); // a caller that forgets stop() must not hang; the exit hook still kills it
    this.child = child;
    this.exited = new Promise<void>((resolve) => {
      const done = (): void => {
        if (this.child === child) this.child = undefined;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
  }

  /** Until the node answers and is synced (on its own: the cluster size is checked by `waitHealthy`). */
  async waitServing(timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    await this.cluster.until(timeoutMs, `${this.name} synced`, async () => {
      if (this.child === undefined) throw new Error(`${this.name} exited during startup; ${await tail(this.logFile)}`);
      const s = await this.status();
      return s !== undefined && s.ready && s.localState === SYNCED && s.clusterStatus === 'Primary';
    });
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.ref(); // keep Node alive until the exit arrives
    child.kill('SIGKILL');
    await this.exited;
    this.crashed = true;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) return;
    await this.launch(false, this.crashed ? await this.recoverPosition() : undefined);
    this.crashed = false;
    await this.waitServing();
    await this.cluster.waitHealthy();
  }

  async isolate(): Promise<void> {
    await this.sql("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
    const others = this.cluster.members.filter((m) => m !== this && m.running);
    await this.cluster.until(STEP_TIMEOUT_MS, `${this.name} isolated`, async () => {
      const s = await this.status();
      if (s === undefined || s.clusterStatus === 'Primary') return false;
      const seen = await Promise.all(others.map((m) => m.status()));
      return seen.every((o) => o !== undefined && o.clusterStatus === 'Primary' && o.clusterSize === others.length);
    });
  }

  async rejoin(): Promise<void> {
    await this.sql("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'");
    await this.waitServing();
    await this.cluster.waitHealthy();
  }

  async bootstrap(): Promise<void> {
    await this.sql("SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'");
    await this.waitServing();
  }

  async status(): Promise<GaleraNodeStatus | undefined> {
    if (this.child === undefined) return undefined;
    let conn: Connection | undefined;
    try {
      conn = await createConnection({ host: '127.0.0.1', port: this.ports.client, user: 'root', connectTimeout: 1_000 });
      const [rows] = await conn.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'wsrep_%'");
      const value = (name: string): string => String(rows.find((r) => r['Variable_name'] === name)?.['Value'] ?? '');
      return {
        ready: value('wsrep_ready') === 'ON',
        localState: Number(value('wsrep_local_state')),
        stateComment: value('wsrep_local_state_comment'),
        clusterStatus: value('wsrep_cluster_status'),
        clusterSize: Number(value('wsrep_cluster_size')),
      };
    } catch {
      return undefined;
    } finally {
      await conn?.end().catch(() => conn?.destroy());
    }
  }

  /** One statement on this node, over a connection of its own. */
  async sql(statement: string): Promise<void> {
    const conn = await createConnection({ host: '127.0.0.1', port: this.ports.client, user: 'root', connectTimeout: 2_000 });
    try {
      await conn.query(statement);
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
  }

  /** For the cluster's stop(): SIGTERM (SIGKILL after a bound); nothing to keep. */
  async halt(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.ref();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  abandon(): void {
    this.child?.kill('SIGKILL');
  }

  private userArgs(): string[] {
    return this.cluster.owner !== undefined ? ['--user=mysql'] : [];
  }
}

// Clusters never stopped are killed and deleted when Node exits: no orphan mariadbd is left behind.
const live = new Set<Cluster>();
let exitHookRegistered = false;
function registerExitHook(): void {
  if (exitHookRegistered) return;
  exitHookRegistered = true;
  process.once('exit', () => {
    for (const cluster of live) cluster.abandon();
  });
}

function mysqlUser(): Owner | undefined {
  const id = (flag: string): number | undefined => {
    const out = spawnSync('id', [flag, 'mysql'], { encoding: 'utf8' });
    const n = Number(out.stdout.trim());
    return out.status === 0 && Number.isInteger(n) ? n : undefined;
  };
  const uid = id('-u');
  const gid = id('-g');
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * `n` distinct free loopback ports, below the kernel's ephemeral range: a port
 * from that range (what `listen(0)` hands out) can be taken by any outgoing
 * connection before the node binds it, seconds later. Each is checked free by
 * binding it; all are held at once, then released.
 */
async function freePorts(n: number): Promise<number[]> {
  const [low] = ephemeralRange();
  const servers: Server[] = [];
  const ports = new Set<number>();
  try {
    for (let tries = 0; ports.size < n; tries++) {
      if (tries > n * 50) throw new Error('could not find free loopback ports');
      const port = 10_000 + Math.floor(Math.random() * Math.max(1, low - 10_000));
      if (ports.has(port)) continue;
      const server = createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (!bound) continue;
      servers.push(server);
      ports.add(port);
    }
    return [...ports];
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** `net.ipv4.ip_local_port_range` (Linux), or the IANA default elsewhere. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && low > 10_100) return [low, high];
  } catch {
    // not Linux
  }
  return [49_152, 65_535];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// CLI: `npx tsx scripts/galera.ts` starts a cluster, runs each fault once, prints timings, stops it.
if (require.main === module) {
  const t = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const t0 = Date.now();
  (async () => {
    const missing = galeraMissing();
    if (missing !== undefined) {
      console.error(`Galera not available: ${missing}`);
      process.exitCode = 1;
      return;
    }
    const cluster = await startGaleraCluster({ log: (line) => console.log(`[${t()}] ${line}`) });
    try {
      console.log(cluster.urls.join('\n'));
      if (process.argv.includes('--faults')) {
        const [a, b, c] = cluster.nodes as [GaleraNode, GaleraNode, GaleraNode];
        let at = Date.now();
        await c.kill();
        await cluster.until(STEP_TIMEOUT_MS, 'evicted', async () => (await a.status())?.clusterSize === 2);
        console.log(`[${t()}] g3 killed, evicted after ${Date.now() - at} ms`);
        at = Date.now();
        await c.start();
        console.log(`[${t()}] g3 rejoined in ${Date.now() - at} ms`);
        at = Date.now();
        await b.isolate();
        console.log(`[${t()}] g2 isolated in ${Date.now() - at} ms: ${JSON.stringify(await b.status())}`);
        at = Date.now();
        await b.rejoin();
        console.log(`[${t()}] g2 rejoined in ${Date.now() - at} ms`);
        at = Date.now();
        await Promise.all([b.kill(), c.kill()]);
        await cluster.until(STEP_TIMEOUT_MS, 'non-Primary', async () => (await a.status())?.clusterStatus === 'non-Primary');
        console.log(`[${t()}] quorum lost after ${Date.now() - at} ms: ${JSON.stringify(await a.status())}`);
        at = Date.now();
        await a.bootstrap();
        console.log(`[${t()}] g1 bootstrapped in ${Date.now() - at} ms`);
        at = Date.now();
        await Promise.all([b.start(), c.start()]);
        await cluster.waitHealthy();
        console.log(`[${t()}] g2, g3 rejoined in ${Date.now() - at} ms`);
      }
    } finally {
      await cluster.stop();
      console.log(`[${t()}] stopped`);
    }
  })().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
