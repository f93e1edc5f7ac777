/**
 * Jest globalSetup: finds (or starts) the database once for the whole run.
 * MYSQL_URL set here reaches the workers because they are spawned after this runs.
 */
import { ensureServer, redactUrl, type DatabaseServer } from '../../scripts/server';

// globalSetup and globalTeardown run in the same process, so globalThis carries the server across.
export const SERVER_KEY = '__rollbackPoolTestServer';
export type GlobalWithServer = typeof globalThis & {
  [SERVER_KEY]?: { server: DatabaseServer; previousUrl: string | undefined };
};

export default async function globalSetup(): Promise<void> {
  const server = await ensureServer();
  (globalThis as GlobalWithServer)[SERVER_KEY] = { server, previousUrl: process.env.MYSQL_URL };
  process.env.MYSQL_URL = server.url;
  if (server.throwaway) console.log(`\nUsing a throwaway MariaDB at ${redactUrl(server.url)}`);
}
