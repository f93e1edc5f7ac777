/** Jest globalTeardown: stops the server globalSetup started (a no-op for a shared one). */
import { SERVER_KEY, type GlobalWithServer } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const state = globalThis as GlobalWithServer;
  const entry = state[SERVER_KEY];
  if (entry === undefined) return;
  delete state[SERVER_KEY];
  // Restore MYSQL_URL so a watch-mode rerun does not point at the server stopped below.
  if (entry.previousUrl === undefined) delete process.env.MYSQL_URL;
  else process.env.MYSQL_URL = entry.previousUrl;
  await entry.server.stop();
}
