/**
 * From what the user typed to `kenning/search` params, and from the answers
 * back to rows of the search box. Pure: searchPick.ts turns rows into
 * QuickPick items and opens them.
 */

import type {
  FeedbackParams,
  Range,
  RelatedResponse,
  SearchHit,
  SearchMode,
  SearchParams,
  SearchResponse,
} from './protocol';

/** Queries shorter than this are not sent: one or two letters match everything. */
export const MIN_QUERY_LENGTH = 2;

/** Params for one search, or undefined when there is nothing worth asking. */
export function searchParams(
  query: string,
  options: { limit?: number; mode?: SearchMode; paths?: string[] } = {},
): SearchParams | undefined {
  const text = query.trim();
  if (text.length < MIN_QUERY_LENGTH) return undefined;
  const params: SearchParams = { query: text };
  if (options.limit !== undefined) params.limit = Math.max(1, Math.min(1000, Math.floor(options.limit)));
  if (options.mode !== undefined && options.mode !== 'hybrid') params.mode = options.mode;
  if (options.paths !== undefined && options.paths.length > 0) params.paths = [...options.paths];
  return params;
}

/** One row of the search box. */
export interface ResultRow {
  /** Symbol name (with a codicon for its kind), or the snippet's first line when there is no symbol. */
  label: string;
  /** `path:line`, 1-based, with the folder's name in a multi-root workspace. */
  description: string;
  /** The snippet's first meaningful line, when the label is the symbol. */
  detail?: string;
  uri: string;
  range: Range;
  score: number;
  /** The URI of the workspace folder whose server answered with this row. */
  folder?: string;
}

const KIND_ICONS: Record<string, string> = {
  function: '$(symbol-function)',
  method: '$(symbol-method)',
  class: '$(symbol-class)',
  type: '$(symbol-interface)',
  header: '$(symbol-key)',
  window: '$(symbol-file)',
};

const SNIPPET_WIDTH = 120;

/** The first line of a snippet that says something, whitespace collapsed, cut to `width`. */
export function oneLine(snippet: string, width = SNIPPET_WIDTH): string {
  const lines = snippet.split(/\r?\n/).map((l) => l.trim());
  const line = lines.find((l) => l !== '' && !/^[\s{}()[\];,]*$/.test(l)) ?? lines.find((l) => l !== '') ?? '';
  const flat = line.replace(/\s+/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

/** Workspace-relative path of a hit: its `path`, else the URI made relative to `rootUri`. */
export function hitPath(hit: SearchHit, rootUri?: string): string {
  if (hit.path) return hit.path;
  if (rootUri) {
    const root = rootUri.endsWith('/') ? rootUri : `${rootUri}/`;
    if (hit.uri.startsWith(root)) return decodeURIComponent(hit.uri.slice(root.length));
  }
  return decodeURIComponent(hit.uri.replace(/^file:\/\//, ''));
}

export function toRow(hit: SearchHit, folder?: { name: string; uri: string; showName: boolean }): ResultRow {
  const rel = hitPath(hit, folder?.uri);
  const line = hit.range.start.line + 1;
  const where = folder?.showName ? `${folder.name}/${rel}:${line}` : `${rel}:${line}`;
  const snippet = oneLine(hit.snippet);
  const icon = KIND_ICONS[hit.kind ?? ''] ?? (hit.symbol ? '$(symbol-misc)' : '$(symbol-file)');
  if (hit.symbol) {
    return { label: `${icon} ${hit.symbol}`, description: where, detail: snippet || undefined,
      uri: hit.uri, range: hit.range, score: hit.score };
  }
  return { label: `${icon} ${snippet || rel}`, description: where, uri: hit.uri, range: hit.range, score: hit.score };
}

/** One folder's answer, labelled with the folder it came from. */
export interface FolderAnswer {
  folder: { name: string; uri: string };
  response: SearchResponse;
}

export interface MergedAnswer {
  rows: ResultRow[];
  /** For the box's title: "7 results · 12 ms", plus "· index still building" while partial. */
  summary: string;
  /** The server's remarks, de-duplicated (shown when there are no results). */
  notes: string[];
  partial: boolean;
}

/**
 * Rows from the answers of every folder's server, best score first, at most
 * `limit`. Scores of different folders come from different indexes, so they
 * are comparable only roughly; one folder (the common case) keeps its order.
 */
export function mergeAnswers(answers: FolderAnswer[], limit: number): MergedAnswer {
  const showName = answers.length > 1;
  const rows = answers.flatMap(({ folder, response }) =>
    response.results.map((hit) => ({ ...toRow(hit, { ...folder, showName }), folder: folder.uri })),
  );
  if (answers.length > 1) rows.sort((a, b) => b.score - a.score);
  const kept = rows.slice(0, Math.max(0, limit));
  const partial = answers.some((a) => a.response.partial === true);
  const notes = [...new Set(answers.flatMap((a) => a.response.notes ?? []))];
  const took = Math.max(0, ...answers.map((a) => a.response.took_ms ?? 0));
  const count = kept.length === 1 ? '1 result' : `${kept.length} results`;
  const summary = `${count} · ${took < 10 ? took.toFixed(1) : Math.round(took)} ms${partial ? ' · index still building' : ''}`;
  return { rows: kept, summary, notes, partial };
}

/**
 * The lines a hit covers, 0-based and inclusive. Kenning's ranges end at the
 * start of the line after the chunk, which is not part of it.
 */
export function coveredLines(range: Range): { first: number; last: number } {
  const first = range.start.line;
  let last = range.end.line;
  if (range.end.character === 0 && last > first) last -= 1;
  return { first, last: Math.max(first, last) };
}

/**
 * What to tell the server when the user opens `row`, found for `query`: the pick it
 * learns from. Undefined when there is no query worth keeping (the box was emptied).
 */
export function feedbackParams(query: string, row: ResultRow): FeedbackParams | undefined {
  const text = query.trim();
  if (text.length < MIN_QUERY_LENGTH) return undefined;
  return { query: text, uri: row.uri, range: row.range };
}

/**
 * The search box's rows for a `kenning/related` answer, and its title: what the
 * results are similar to (`invoice_total · billing/invoice.py:13`).
 */
export function relatedAnswer(
  response: RelatedResponse,
  folder: { name: string; uri: string },
  limit: number,
): MergedAnswer & { title: string } {
  const merged = mergeAnswers(
    [{ folder, response: { results: response.results, took_ms: response.took_ms, model: response.model,
      generation: response.generation, notes: response.notes } }],
    limit,
  );
  const src = response.source;
  const where = `${hitPath(src, folder.uri)}:${src.range.start.line + 1}`;
  const what = src.symbol ? `${src.symbol} · ${where}` : where;
  return { ...merged, title: `Similar to ${what}` };
}
