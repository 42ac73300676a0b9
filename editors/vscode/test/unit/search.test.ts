import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SearchHit, SearchResponse } from '../../src/core/protocol';
import {
  coveredLines,
  feedbackParams,
  hitPath,
  mergeAnswers,
  oneLine,
  searchParams,
  toRow,
} from '../../src/core/search';

function hit(patch: Partial<SearchHit> = {}): SearchHit {
  return {
    uri: 'file:///work/app/net/retry.py',
    range: { start: { line: 6, character: 0 }, end: { line: 15, character: 0 } },
    score: 0.91,
    snippet: 'def retry_with_backoff(call, attempts=5):\n    """Retry a failed request."""\n',
    path: 'net/retry.py',
    symbol: 'retry_with_backoff',
    language: 'python',
    kind: 'function',
    ...patch,
  };
}

function response(results: SearchHit[], patch: Partial<SearchResponse> = {}): SearchResponse {
  return { results, took_ms: 12.4, model: 'all-MiniLM-L6-v2@base', generation: 3, ...patch };
}

describe('search params', () => {
  it('trims the query and sends only what differs from the server defaults', () => {
    assert.deepEqual(searchParams('  retry uploads  '), { query: 'retry uploads' });
    assert.deepEqual(searchParams('retry', { limit: 20, mode: 'hybrid' }), { query: 'retry', limit: 20 });
    assert.deepEqual(searchParams('retry', { mode: 'lexical', paths: ['src/**'] }), { query: 'retry', mode: 'lexical', paths: ['src/**'] });
  });

  it('does not ask for empty or one-letter queries', () => {
    assert.equal(searchParams(''), undefined);
    assert.equal(searchParams('   '), undefined);
    assert.equal(searchParams('r'), undefined);
  });

  it('keeps the limit inside what the server accepts', () => {
    assert.equal(searchParams('retry', { limit: 0 })?.limit, 1);
    assert.equal(searchParams('retry', { limit: 5000 })?.limit, 1000);
  });
});

describe('result rows', () => {
  it('shows symbol, path:line (1-based) and the first line of the snippet', () => {
    const row = toRow(hit());
    assert.equal(row.label, '$(symbol-function) retry_with_backoff');
    assert.equal(row.description, 'net/retry.py:7');
    assert.equal(row.detail, 'def retry_with_backoff(call, attempts=5):');
    assert.equal(row.uri, 'file:///work/app/net/retry.py');
  });

  it('uses the snippet as the label when there is no symbol', () => {
    const row = toRow(hit({ symbol: undefined, kind: 'window', snippet: '\n\n  import random\nimport time' }));
    assert.equal(row.label, '$(symbol-file) import random');
    assert.equal(row.detail, undefined);
  });

  it('puts the folder name in front of the path in a multi-root workspace', () => {
    const row = toRow(hit(), { name: 'app', uri: 'file:///work/app', showName: true });
    assert.equal(row.description, 'app/net/retry.py:7');
  });

  it('derives the path from the URI when the server sends none', () => {
    assert.equal(hitPath(hit({ path: undefined, uri: 'file:///work/app/a%20b/c.py' }), 'file:///work/app'), 'a b/c.py');
  });

  it('cuts long snippet lines and skips lines of bare brackets', () => {
    assert.equal(oneLine('{\n  const   x =   1;\n}'), 'const x = 1;');
    const long = oneLine('x'.repeat(300), 50);
    assert.equal(long.length, 50);
    assert.ok(long.endsWith('…'));
  });

  it('knows that the range ends at the start of the line after the chunk', () => {
    assert.deepEqual(coveredLines(hit().range), { first: 6, last: 14 });
    assert.deepEqual(coveredLines({ start: { line: 3, character: 0 }, end: { line: 3, character: 10 } }), { first: 3, last: 3 });
  });
});

describe('merging answers', () => {
  it('keeps one folder in the server order and summarises the answer', () => {
    const answer = mergeAnswers([{ folder: { name: 'app', uri: 'file:///work/app' },
      response: response([hit({ score: 0.2 }), hit({ score: 0.9, symbol: 'b' })]) }], 10);
    assert.deepEqual(answer.rows.map((r) => r.score), [0.2, 0.9]);
    assert.equal(answer.summary, '2 results · 12 ms');
    assert.equal(answer.rows[0].description, 'net/retry.py:7');
  });

  it('interleaves several folders by score, cuts to the limit and says when the index is partial', () => {
    const a = { folder: { name: 'a', uri: 'file:///a' }, response: response([hit({ score: 0.5 }), hit({ score: 0.1 })]) };
    const b = { folder: { name: 'b', uri: 'file:///b' },
      response: response([hit({ score: 0.7 })], { partial: true, took_ms: 3.25, notes: ['the index is still being built'] }) };
    const answer = mergeAnswers([a, b], 2);
    assert.deepEqual(answer.rows.map((r) => [r.score, r.description]), [[0.7, 'b/net/retry.py:7'], [0.5, 'a/net/retry.py:7']]);
    assert.equal(answer.summary, '2 results · 12 ms · index still building');
    assert.deepEqual(answer.notes, ['the index is still being built']);
    assert.equal(answer.partial, true);
  });

  it('passes on the notes of an empty answer', () => {
    const answer = mergeAnswers([{ folder: { name: 'a', uri: 'file:///a' },
      response: response([], { took_ms: 1.5, notes: ['nothing matched; try other words'] }) }], 10);
    assert.equal(answer.summary, '0 results · 1.5 ms');
    assert.deepEqual(answer.notes, ['nothing matched; try other words']);
  });
});

describe('feedback when a result is opened', () => {
  it('names the query as typed, the opened result and the folder whose server answered', () => {
    const merged = mergeAnswers(
      [{ folder: { name: 'app', uri: 'file:///work/app' }, response: response([hit()]) }],
      10,
    );
    const [row] = merged.rows;
    assert.equal(row.folder, 'file:///work/app');
    assert.deepEqual(feedbackParams('  retry failed uploads ', row), {
      query: 'retry failed uploads',
      uri: 'file:///work/app/net/retry.py',
      range: { start: { line: 6, character: 0 }, end: { line: 15, character: 0 } },
    });
  });

  it('sends nothing for a box that no longer holds a query', () => {
    const row = toRow(hit());
    assert.equal(feedbackParams('', row), undefined);
    assert.equal(feedbackParams(' r ', row), undefined);
  });
});
