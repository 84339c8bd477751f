import type { KyselyPlugin, QueryId, RootOperationNode } from 'kysely';

/**
 * A Kysely plugin that holds statements `matches` picks out right after they ran (their locks
 * taken, their result not yet returned) until `open()`: the interleavings tests need between two
 * writers, or a worker stalled mid-page. `atGate` resolves when the first is held. `once`: only the
 * first matching statement is held.
 */
export function pauseAfter(matches: (node: RootOperationNode) => boolean, o: { once?: boolean } = {}): { plugin: KyselyPlugin; atGate: Promise<void>; open: () => void } {
  let reached!: () => void;
  const atGate = new Promise<void>((resolve) => (reached = resolve));
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const picked = new Set<QueryId>();
  let seen = false;
  const plugin: KyselyPlugin = {
    transformQuery({ node, queryId }) {
      if (!(o.once && seen) && matches(node)) {
        seen = true;
        picked.add(queryId);
      }
      return node;
    },
    async transformResult({ queryId, result }) {
      if (picked.delete(queryId)) {
        reached();
        await gate;
      }
      return result;
    },
  };
  return { plugin, atGate, open };
}
