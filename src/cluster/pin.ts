/**
 * Which node a cluster's request scope runs on. `cluster.withScope(fn)` picks
 * a node and runs `fn` in that node's `Pool.withScope`; the scope belongs to
 * that one pool, so every call `fn` makes through the cluster must reach the
 * same pool to take part in it. This AsyncLocalStorage carries the pick
 * along `fn`'s asynchronous calls.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ClusterNode } from './node';

/** The nodes scopes are pinned to, by cluster (one store for every cluster; a nested scope on another cluster adds its own). */
const pins = new AsyncLocalStorage<ReadonlyMap<object, ClusterNode>>();

/** The node the current request scope of `cluster` runs on, if `fn` is running inside one. */
export function pinnedNode(cluster: object): ClusterNode | undefined {
  return pins.getStore()?.get(cluster);
}

/** Runs `fn` with `cluster`'s calls pinned to `node` (the innermost pin wins). */
export function runPinned<T>(cluster: object, node: ClusterNode, fn: () => Promise<T>): Promise<T> {
  const outer = pins.getStore();
  const map = new Map(outer);
  map.set(cluster, node);
  return pins.run(map, fn);
}
