import { AsyncLocalStorage } from 'node:async_hooks';

/** One running `onReload` call, seen from the code it calls and everything that code starts. */
interface Scope {
  readonly owner: object;
  /** Cleared when the hook returns (or is abandoned): code it started may outlive it. */
  active: boolean;
  /** The hook this one runs inside (a hook of one cache that reloads another). */
  readonly outer: Scope | undefined;
}

const scopes = new AsyncLocalStorage<Scope>();
/** Hooks running in the process; the storage is switched off at zero (in Node 20 it costs every promise a hook). */
let running = 0;

/**
 * Runs `hook` so that {@link insideHook} can tell, through every `await`, timer and callback it
 * starts, that it runs inside `owner`'s hook. `end()` marks the hook as over.
 */
export function runInHook<T>(owner: object, hook: () => Promise<T>): { readonly result: Promise<T>; end(): void } {
  const scope: Scope = { owner, active: true, outer: scopes.getStore() };
  running++;
  const result = scopes.run(scope, hook);
  return {
    result,
    end(): void {
      if (!scope.active) return;
      scope.active = false;
      running--;
      if (running === 0 && typeof scopes.disable === 'function') scopes.disable();
    },
  };
}

/** Whether the running code was called, directly or through anything it awaits, from a hook of `owner` that has not returned. */
export function insideHook(owner: object): boolean {
  if (running === 0) return false;
  for (let scope = scopes.getStore(); scope !== undefined; scope = scope.outer) {
    if (scope.owner === owner && scope.active) return true;
  }
  return false;
}
