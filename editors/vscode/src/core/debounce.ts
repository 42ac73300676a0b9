/**
 * Search-as-you-type: wait until the typing pauses, ask once, cancel what is
 * no longer wanted, and never show an answer to an older query over a newer one.
 *
 * The tokens are structurally LSP cancellation tokens, so the same object goes
 * to `LanguageClient.sendRequest` (which then sends `$/cancelRequest`) and to
 * a plain vscode-jsonrpc connection in the tests.
 */

export interface Disposable {
  dispose(): void;
}

export interface CancelToken {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: (e: unknown) => unknown, thisArgs?: unknown, disposables?: Disposable[]): Disposable;
}

/** A cancellation source without VS Code: cancel() once, listeners hear it once. */
export class CancelSource {
  private cancelled = false;
  private readonly listeners = new Set<(e: unknown) => unknown>();
  readonly token: CancelToken;

  constructor() {
    const source = this;
    this.token = {
      get isCancellationRequested(): boolean {
        return source.cancelled;
      },
      onCancellationRequested(listener, thisArgs, disposables): Disposable {
        const bound = thisArgs === undefined ? listener : listener.bind(thisArgs);
        if (source.cancelled) {
          queueMicrotask(() => bound(undefined));
          return { dispose() {} };
        }
        source.listeners.add(bound);
        const d = { dispose: () => void source.listeners.delete(bound) };
        disposables?.push(d);
        return d;
      },
    };
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) {
      try {
        listener(undefined);
      } catch {
        // one listener's failure must not stop the others
      }
    }
  }
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface LatestOnlyEvents<T> {
  /** The answer to the newest query; `undefined` when the query was cleared. */
  onResult(query: string, result: T | undefined): void;
  /** The newest query failed (cancellations of older ones are never reported). */
  onError(query: string, error: unknown): void;
  /** True while a query waits for its pause or its answer. */
  onBusy?(busy: boolean): void;
}

/**
 * Debounced, cancelling runner for "search as the user types".
 *
 * `update(q)` restarts the pause; when it ends, `run(q, token)` is called and
 * the previous request (if still running) is cancelled. An answer is delivered
 * only if its query is still the newest. `isEmpty(q)` queries are not run:
 * they clear the result at once.
 */
export class LatestOnly<T> implements Disposable {
  private timer: unknown;
  private inFlight: CancelSource | undefined;
  private seq = 0;
  private disposed = false;
  private busy = false;

  constructor(
    private readonly run: (query: string, token: CancelToken) => Promise<T>,
    private readonly events: LatestOnlyEvents<T>,
    private readonly options: { delayMs: number; isEmpty?: (query: string) => boolean; timers?: Timers },
  ) {}

  /** The user typed: search for `query` after the pause, cancelling anything older. */
  update(query: string): void {
    const seq = this.begin(query);
    if (seq === undefined) return;
    const timers = this.options.timers ?? realTimers;
    this.timer = timers.setTimeout(() => {
      this.timer = undefined;
      void this.fire(query, seq);
    }, this.options.delayMs);
  }

  /** Search for `query` now, skipping the pause (e.g. the box opens with text in it). */
  now(query: string): void {
    const seq = this.begin(query);
    if (seq !== undefined) void this.fire(query, seq);
  }

  /** Supersede whatever is pending; the new sequence number, or undefined when
   *  there is nothing to search (disposed, or an empty query answered at once). */
  private begin(query: string): number | undefined {
    if (this.disposed) return undefined;
    const seq = ++this.seq;
    this.cancelPending();
    if (this.options.isEmpty?.(query)) {
      this.setBusy(false);
      this.events.onResult(query, undefined);
      return undefined;
    }
    this.setBusy(true);
    return seq;
  }

  dispose(): void {
    this.disposed = true;
    this.seq++;
    this.cancelPending();
    this.setBusy(false);
  }

  private async fire(query: string, seq: number): Promise<void> {
    const source = new CancelSource();
    this.inFlight = source;
    try {
      const result = await this.run(query, source.token);
      if (seq === this.seq && !source.token.isCancellationRequested) {
        this.events.onResult(query, result);
      }
    } catch (error) {
      if (seq === this.seq && !source.token.isCancellationRequested) {
        this.events.onError(query, error);
      }
    } finally {
      if (this.inFlight === source) this.inFlight = undefined;
      if (seq === this.seq) this.setBusy(false);
    }
  }

  private cancelPending(): void {
    if (this.timer !== undefined) {
      (this.options.timers ?? realTimers).clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.inFlight !== undefined) {
      this.inFlight.cancel();
      this.inFlight = undefined;
    }
  }

  private setBusy(busy: boolean): void {
    if (busy === this.busy) return;
    this.busy = busy;
    this.events.onBusy?.(busy);
  }
}
