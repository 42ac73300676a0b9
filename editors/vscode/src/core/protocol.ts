/**
 * The wire types of Kenning's custom LSP methods (docs/protocol.md §2), as the
 * extension sees them. No `vscode` import: the unit tests and the real-server
 * test use these modules from plain Node.
 */

export const SEARCH = 'kenning/search';
export const STATUS = 'kenning/status';
export const REINDEX = 'kenning/reindex';
export const TRAIN = 'kenning/train';
/** Client -> server notification: the user opened a search result (a pick to learn from). */
export const FEEDBACK = 'kenning/feedback';
export const RELATED = 'kenning/related';
export const INDEX_CHANGED = 'kenning/indexChanged';

export type SearchMode = 'hybrid' | 'semantic' | 'lexical';

export interface Position {
  line: number;
  character: number;
}

/** An LSP range: 0-based lines; Kenning's `end` is the start of the line after the chunk. */
export interface Range {
  start: Position;
  end: Position;
}

export interface SearchParams {
  query: string;
  limit?: number;
  mode?: SearchMode;
  paths?: string[];
}

export interface SearchHit {
  uri: string;
  range: Range;
  score: number;
  snippet: string;
  /** Workspace-relative, `/` separators (a Kenning addition to the protocol's fields). */
  path?: string;
  symbol?: string;
  language?: string;
  /** function, method, class, type, header or window. */
  kind?: string;
  /** URI of the workspace folder `path` is relative to. */
  folder?: string;
}

export interface SearchResponse {
  results: SearchHit[];
  took_ms: number;
  model: string;
  generation: number | null;
  /** True while the first index is still being built. */
  partial?: boolean;
  /** Plain-language remarks: still building, no vectors yet, nothing indexed. */
  notes?: string[];
}

/** `kenning/related`: code similar to the definition at a position. */
export interface RelatedParams {
  uri: string;
  position: Position;
  limit?: number;
  paths?: string[];
}

export interface RelatedResponse {
  /** The code at the position asked about, whose stored vector was the query. */
  source: SearchHit;
  results: SearchHit[];
  took_ms: number;
  model: string;
  generation: number | null;
  notes?: string[];
}

export type ServerState = 'starting' | 'indexing' | 'idle' | 'training';

/** One workspace folder in `kenning/status` (a server given several folders). */
export interface FolderStatus {
  name: string;
  uri: string;
  /** URI of the folder whose index holds this one (itself, or the folder it lies in). */
  indexed_in: string;
  state: ServerState | 'failed' | 'stopping';
  files: number;
  chunks: number;
  pending: number;
  queued: number;
  error?: string;
}

export interface StatusResponse {
  state: ServerState;
  files: number;
  chunks: number;
  /** Chunks still waiting for a vector. */
  pending: number;
  model: { name: string; version: string; trained_at?: string };
  last_training?: Record<string, unknown>;
  workspace?: string;
  index_dir?: string;
  generation?: number | null;
  queued?: number;
  index_bytes?: number;
  warnings?: string[];
  /** False while another Kenning process (an MCP server, say) writes this index. */
  writer?: boolean;
  folders?: FolderStatus[];
}

/** `kenning/feedback`: the query as typed, and the result the user opened. */
export interface FeedbackParams {
  query: string;
  uri: string;
  range: Range;
}

export interface ReindexParams {
  paths?: string[];
}

export interface ReindexResponse {
  queued: number;
}

export interface TrainParams {
  force?: boolean;
}

export interface TrainResponse {
  started: boolean;
  reason?: string;
}

export interface IndexChanged {
  generation: number | null;
  files: number;
  chunks: number;
  partial?: boolean;
}

/** `$/progress` values for work-done progress (LSP). */
export type WorkDoneProgressValue =
  | { kind: 'begin'; title: string; message?: string; percentage?: number; cancellable?: boolean }
  | { kind: 'report'; message?: string; percentage?: number; cancellable?: boolean }
  | { kind: 'end'; message?: string };
