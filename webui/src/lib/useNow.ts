import { useSyncExternalStore } from "react";

/** One shared clock for relative times and running durations: ticks every few seconds. */
let now = Date.now();
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  if (timer === undefined) {
    now = Date.now(); // the clock was stopped while nothing showed a time: it is stale
    timer = setInterval(() => {
      now = Date.now();
      for (const l of listeners) l();
    }, 5000);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

export function useNow(): number {
  return useSyncExternalStore(subscribe, () => now);
}
