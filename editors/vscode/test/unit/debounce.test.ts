import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelSource, LatestOnly, type CancelToken, type Timers } from '../../src/core/debounce';

/** Timers that fire only when the test says so. */
class ManualTimers implements Timers {
  private next = 1;
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }
}

/** A fake server: each call waits until the test answers or the token cancels it. */
class FakeServer {
  readonly calls: { query: string; token: CancelToken; answer: (r: string) => void; fail: (e: unknown) => void }[] = [];
  run = (query: string, token: CancelToken): Promise<string> =>
    new Promise((answer, fail) => {
      this.calls.push({ query, token, answer, fail });
    });
}

const tick = () => new Promise((r) => setImmediate(r));

function harness(delayMs = 150) {
  const timers = new ManualTimers();
  const server = new FakeServer();
  const results: [string, string | undefined][] = [];
  const errors: [string, unknown][] = [];
  const busy: boolean[] = [];
  const search = new LatestOnly<string>(server.run, {
    onResult: (q, r) => results.push([q, r]),
    onError: (q, e) => errors.push([q, e]),
    onBusy: (b) => busy.push(b),
  }, { delayMs, timers, isEmpty: (q) => q.trim() === '' });
  return { timers, server, results, errors, busy, search };
}

describe('search as you type', () => {
  it('waits for the typing to pause, then asks once for the last text', async () => {
    const h = harness();
    h.search.update('r');
    h.search.update('re');
    h.search.update('retry');
    assert.equal(h.timers.pending.size, 1, 'each keystroke restarts the one pause');
    assert.equal([...h.timers.pending.values()][0].ms, 150);
    assert.equal(h.server.calls.length, 0);
    h.timers.fireAll();
    assert.deepEqual(h.server.calls.map((c) => c.query), ['retry']);
    h.server.calls[0].answer('R1');
    await tick();
    assert.deepEqual(h.results, [['retry', 'R1']]);
    assert.deepEqual(h.busy, [true, false]);
  });

  it('cancels the request in flight when the user types on', async () => {
    const h = harness();
    h.search.update('retry');
    h.timers.fireAll();
    const first = h.server.calls[0];
    let heard = 0;
    first.token.onCancellationRequested(() => heard++);
    h.search.update('retry uploads');
    assert.equal(first.token.isCancellationRequested, true);
    assert.equal(heard, 1);
    h.timers.fireAll();
    assert.equal(h.server.calls[1].token.isCancellationRequested, false);
    h.server.calls[1].answer('R2');
    await tick();
    assert.deepEqual(h.results, [['retry uploads', 'R2']]);
  });

  it('drops a stale answer that arrives after a newer query was sent', async () => {
    const h = harness();
    h.search.update('retry');
    h.timers.fireAll();
    h.search.update('retry uploads');
    h.timers.fireAll();
    h.server.calls[1].answer('new');
    h.server.calls[0].answer('old'); // the server ignored the cancellation and answered anyway
    await tick();
    assert.deepEqual(h.results, [['retry uploads', 'new']]);
  });

  it('reports the newest query failing, never a cancelled one', async () => {
    const h = harness();
    h.search.update('retry');
    h.timers.fireAll();
    h.search.update('retry uploads');
    h.timers.fireAll();
    h.server.calls[0].fail(new Error('RequestCancelled'));
    h.server.calls[1].fail(new Error('index is locked'));
    await tick();
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0][0], 'retry uploads');
    assert.equal(h.busy.at(-1), false);
  });

  it('clears at once for an empty query, cancelling what was pending', async () => {
    const h = harness();
    h.search.update('retry');
    h.timers.fireAll();
    const inFlight = h.server.calls[0];
    h.search.update('  ');
    assert.equal(inFlight.token.isCancellationRequested, true);
    assert.equal(h.timers.pending.size, 0);
    assert.deepEqual(h.results, [['  ', undefined]]);
    assert.deepEqual(h.busy, [true, false]);
  });

  it('searches at once with now(), and stops everything on dispose', async () => {
    const h = harness();
    h.search.now('retry');
    assert.equal(h.server.calls.length, 1);
    h.search.dispose();
    assert.equal(h.server.calls[0].token.isCancellationRequested, true);
    h.server.calls[0].answer('late');
    await tick();
    assert.deepEqual(h.results, []);
    h.search.update('more');
    assert.equal(h.timers.pending.size, 0);
  });
});

describe('CancelSource', () => {
  it('tells each listener once, and late listeners right away', async () => {
    const source = new CancelSource();
    let calls = 0;
    const sub = source.token.onCancellationRequested(() => calls++);
    source.token.onCancellationRequested(() => calls++).dispose();
    source.cancel();
    source.cancel();
    assert.equal(calls, 1);
    sub.dispose();
    source.token.onCancellationRequested(() => calls++);
    await tick();
    assert.equal(calls, 2);
    assert.equal(source.token.isCancellationRequested, true);
  });
});
