import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatusResponse } from '../../src/core/protocol';
import { RestartPolicy, StatusBoard, workKind } from '../../src/core/status';

function status(patch: Partial<StatusResponse> = {}): StatusResponse {
  return { state: 'idle', files: 12, chunks: 40, pending: 0, model: { name: 'all-MiniLM-L6-v2', version: 'base' }, ...patch };
}

describe('the status-bar item', () => {
  it('goes starting -> indexing n% -> idle from $/progress', () => {
    const board = new StatusBoard();
    board.starting('app');
    assert.equal(board.paint().text, '$(loading~spin) Kenning: starting');
    board.progress('app', 't1', { kind: 'begin', title: 'Kenning: indexing', message: 'reading files', percentage: 0 });
    assert.equal(board.paint().text, '$(sync~spin) Kenning: indexing 0%');
    board.progress('app', 't1', { kind: 'report', message: 'embedding 30/100 chunks', percentage: 42 });
    const painted = board.paint();
    assert.equal(painted.text, '$(sync~spin) Kenning: indexing 42%');
    assert.match(painted.tooltip, /indexing 42% \(embedding 30\/100 chunks\)/);
    assert.equal(board.busy(), true);
    board.progress('app', 't1', { kind: 'end', message: '12 files, 40 chunks' });
    assert.equal(board.paint().text, '$(search) Kenning: idle');
    assert.equal(board.busy(), false);
  });

  it('shows training from a progress title that says so', () => {
    assert.equal(workKind('Kenning: training'), 'training');
    assert.equal(workKind('Kenning: indexing'), 'indexing');
    const board = new StatusBoard();
    board.progress('app', 't', { kind: 'begin', title: 'Kenning: training', percentage: 10 });
    assert.equal(board.paint().text, '$(beaker~spin) Kenning: training 10%');
  });

  it('takes kenning/status as the truth when no progress is live', () => {
    const board = new StatusBoard();
    board.status('app', status({ state: 'training' }));
    assert.equal(board.paint().text, '$(beaker~spin) Kenning: training');
    board.status('app', status());
    const painted = board.paint();
    assert.equal(painted.text, '$(search) Kenning: idle');
    assert.match(painted.tooltip, /idle — 12 files, 40 chunks\nmodel all-MiniLM-L6-v2@base/);
  });

  it('keeps the live percentage when a coarser status answer arrives meanwhile', () => {
    const board = new StatusBoard();
    board.progress('app', 't', { kind: 'begin', title: 'Kenning: indexing', percentage: 5 });
    board.progress('app', 't', { kind: 'report', percentage: 60 });
    board.status('app', status({ state: 'idle' }));
    assert.equal(board.paint().text, '$(sync~spin) Kenning: indexing 60%');
  });

  it('ignores progress for tokens it never saw begin', () => {
    const board = new StatusBoard();
    board.status('app', status());
    board.progress('app', 'stranger', { kind: 'report', percentage: 50 });
    board.progress('app', 'stranger', { kind: 'end' });
    assert.equal(board.paint().text, '$(search) Kenning: idle');
  });

  it('shows the busiest folder, and the least advanced one when several index', () => {
    const board = new StatusBoard();
    board.status('a', status());
    board.progress('b', 't1', { kind: 'begin', title: 'Kenning: indexing', percentage: 70 });
    board.progress('c', 't2', { kind: 'begin', title: 'Kenning: indexing', percentage: 20 });
    const painted = board.paint();
    assert.equal(painted.text, '$(sync~spin) Kenning: indexing 20%');
    assert.match(painted.tooltip, /^a: idle/m);
    assert.match(painted.tooltip, /^b: indexing 70%/m);
  });

  it('paints a failed folder as an error, with the reason in the tooltip', () => {
    const board = new StatusBoard();
    board.status('a', status());
    board.failed('b', 'the `kenning` server was not found.');
    const painted = board.paint();
    assert.equal(painted.text, '$(error) Kenning');
    assert.equal(painted.error, true);
    assert.match(painted.tooltip, /b: not running: the `kenning` server was not found/);
  });
});

describe('restarting a crashed server', () => {
  const options = { maxRestarts: 2, windowMs: 60_000, minUptimeMs: 5_000 };

  it('never restarts a server that dies while starting', () => {
    const policy = new RestartPolicy(options);
    assert.equal(policy.closed(1000), 'give-up');
    policy.up(0);
    assert.equal(policy.closed(1000), 'give-up');
  });

  it('does not count the uptime of a server the user restarted', () => {
    const policy = new RestartPolicy(options);
    policy.up(0);
    policy.starting();
    assert.equal(policy.closed(60_000), 'give-up');
  });

  it('restarts one that ran a while, a few times per window', () => {
    const policy = new RestartPolicy(options);
    policy.up(0);
    assert.equal(policy.closed(10_000), 'restart');
    policy.up(10_000);
    assert.equal(policy.closed(20_000), 'restart');
    policy.up(20_000);
    assert.equal(policy.closed(30_000), 'give-up');
    policy.up(100_000);
    assert.equal(policy.closed(110_000), 'restart', 'the window has moved on');
  });
});
