/**
 * Node selectors and id patterns, exactly as mysql2's pool cluster has them
 * (lib/pool_cluster.js: `makeSelector`, `patternRegExp`).
 */
import { InvalidOptionError } from '../errors';
import type { SelectorName } from './options';

/** Picks one id of a non-empty list of online node ids (in the order the nodes were added). */
export type Selector = (ids: readonly string[]) => string;

/**
 * A fresh selector. Round robin keeps its counter in the selector, so each
 * namespace (one per pattern and selector, as mysql2) rotates on its own.
 */
export function makeSelector(name: SelectorName): Selector {
  switch (name) {
    case 'RR': {
      let index = 0;
      return (ids) => ids[index++ % ids.length]!;
    }
    case 'RANDOM':
      return (ids) => ids[Math.floor(Math.random() * ids.length)]!;
    case 'ORDER':
      return (ids) => ids[0]!;
  }
}

/** A node id pattern: a glob where `*` matches any run of characters (anything else is literal), or a RegExp. */
export type NodePattern = string | RegExp;

/** The RegExp of a pattern, as mysql2 builds it: `*` becomes `.*`, the rest is escaped, anchored at both ends. */
export function patternRegExp(pattern: NodePattern): RegExp {
  if (pattern instanceof RegExp) return pattern;
  const source = pattern.replace(/([.+?^=!:${}()|[\]/\\])/g, '\\$1').replace(/\*/g, '.*');
  return new RegExp(`^${source}$`);
}

/** Checks a pattern argument; mysql2 treats a missing or empty one as `'*'` where it has a default. */
export function checkPattern(pattern: unknown, fallback: NodePattern | undefined): NodePattern {
  if ((pattern === undefined || pattern === '') && fallback !== undefined) return fallback;
  if (typeof pattern === 'string' || pattern instanceof RegExp) return pattern;
  throw new InvalidOptionError('pattern', "a node id, a glob such as 'replica*', or a RegExp");
}

/** A key telling patterns apart (a string and a RegExp with the same text are different patterns). */
export function patternKey(pattern: NodePattern): string {
  return typeof pattern === 'string' ? `glob:${pattern}` : `regexp:${pattern.source}/${pattern.flags}`;
}
