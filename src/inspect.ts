/**
 * What `console.log(x)`, `util.inspect(x)` and `JSON.stringify(x)` show of the
 * library's objects: a short summary, never the connection options (the
 * password is in them). mysql2's own objects hide it the same way (its pool
 * does not print it; JSON.stringify of its connections throws).
 */
import { inspect, type InspectOptions } from 'node:util';
import type { ConnectionOptions } from 'mysql2';

/** The harmless part of connection options: where, as whom, which database. */
export function describeConnection(options: ConnectionOptions): { host?: string; port?: number; user?: string; database?: string } {
  const { host, port, user, database } = options;
  return { host, port, user, database };
}

/** An `[inspect.custom]` implementation printing `Name { ...summary }`. */
export function inspectAs(name: string, summary: object, options: InspectOptions): string {
  return `${name} ${inspect(summary, options)}`;
}

export const inspectSymbol: typeof inspect.custom = inspect.custom;
