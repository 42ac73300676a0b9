/**
 * What the status-bar item says: idle / indexing n% / training, per folder,
 * folded into one line. Fed by `$/progress` (begin / report / end), by
 * `kenning/status` answers and by the client's own life (starting, stopped).
 * Pure, so every transition is unit-tested; statusBar.ts only paints it.
 */

import type { StatusResponse, WorkDoneProgressValue } from './protocol';

export type Phase = 'starting' | 'indexing' | 'training' | 'idle' | 'stopped' | 'failed';

export interface FolderStatus {
  phase: Phase;
  /** 0-100 while indexing or training, when the server reports it. */
  percentage?: number;
  /** The server's last progress message ("embedding 120/300 chunks") or the failure. */
  message?: string;
  /** The last `kenning/status` answer. */
  status?: StatusResponse;
}

export interface Painted {
  text: string;
  tooltip: string;
  /** Whether the item should be painted as an error. */
  error: boolean;
}

/** Which kind of work a `$/progress` begin announces, from its title. */
export function workKind(title: string): 'indexing' | 'training' {
  return /train/i.test(title) ? 'training' : 'indexing';
}

export class StatusBoard {
  private readonly folders = new Map<string, FolderStatus>();
  /** The kind of work behind each live progress token. */
  private readonly tokens = new Map<string, { folder: string; kind: 'indexing' | 'training' }>();

  get(folder: string): FolderStatus | undefined {
    return this.folders.get(folder);
  }

  names(): string[] {
    return [...this.folders.keys()];
  }

  /** The client for `folder` is starting its server. */
  starting(folder: string): void {
    this.folders.set(folder, { phase: 'starting' });
    this.forgetTokens(folder);
  }

  stopped(folder: string, message?: string): void {
    this.folders.set(folder, { phase: 'stopped', message });
    this.forgetTokens(folder);
  }

  failed(folder: string, message: string): void {
    this.folders.set(folder, { phase: 'failed', message });
    this.forgetTokens(folder);
  }

  remove(folder: string): void {
    this.folders.delete(folder);
    this.forgetTokens(folder);
  }

  /** One `$/progress` value for a token the server created for `folder`. */
  progress(folder: string, token: string, value: WorkDoneProgressValue): void {
    const current = this.folders.get(folder) ?? { phase: 'starting' as Phase };
    if (value.kind === 'begin') {
      const kind = workKind(value.title);
      this.tokens.set(token, { folder, kind });
      this.folders.set(folder, { ...current, phase: kind, percentage: value.percentage, message: value.message });
      return;
    }
    const work = this.tokens.get(token);
    if (work === undefined) return; // a token we never saw begin: ignore
    if (value.kind === 'report') {
      this.folders.set(folder, {
        ...current,
        phase: work.kind,
        percentage: value.percentage ?? current.percentage,
        message: value.message ?? current.message,
      });
      return;
    }
    this.tokens.delete(token);
    const stillWorking = [...this.tokens.values()].find((t) => t.folder === folder);
    this.folders.set(folder, stillWorking
      ? { ...current, phase: stillWorking.kind }
      : { ...current, phase: 'idle', percentage: undefined, message: value.message });
  }

  /**
   * A `kenning/status` answer. While a progress token is live, its percentage
   * wins over the answer's coarser state; otherwise the answer is the truth.
   */
  status(folder: string, status: StatusResponse): void {
    const current = this.folders.get(folder) ?? { phase: 'starting' as Phase };
    const live = [...this.tokens.values()].find((t) => t.folder === folder);
    if (live) {
      this.folders.set(folder, { ...current, status });
      return;
    }
    const phase: Phase = status.state === 'starting' ? 'starting' : status.state;
    const keep = phase === current.phase;
    this.folders.set(folder, {
      phase,
      status,
      percentage: keep ? current.percentage : undefined,
      message: keep ? current.message : undefined,
    });
  }

  /** Whether any folder is busy, so its status is worth polling. */
  busy(): boolean {
    return [...this.folders.values()].some((f) => f.phase === 'starting' || f.phase === 'indexing' || f.phase === 'training');
  }

  /** The status-bar text and tooltip for every folder together. */
  paint(): Painted {
    const entries = [...this.folders.entries()];
    if (entries.length === 0) {
      return { text: '$(search) Kenning', tooltip: 'Kenning: no workspace folder is open', error: false };
    }
    const rank: Record<Phase, number> = { failed: 6, training: 5, indexing: 4, starting: 3, stopped: 2, idle: 1 };
    const [, top] = entries.reduce((a, b) => (rank[b[1].phase] > rank[a[1].phase] ? b : a));
    const tooltip = entries.map(([name, f]) => describe(name, f, entries.length > 1)).join('\n');
    return { text: headline(top, entries), tooltip: `${tooltip}\n\nClick for details`, error: top.phase === 'failed' };
  }

  private forgetTokens(folder: string): void {
    for (const [token, work] of this.tokens) if (work.folder === folder) this.tokens.delete(token);
  }
}

function headline(top: FolderStatus, entries: [string, FolderStatus][]): string {
  switch (top.phase) {
    case 'failed':
      return '$(error) Kenning';
    case 'stopped':
      return '$(circle-slash) Kenning: stopped';
    case 'starting':
      return '$(loading~spin) Kenning: starting';
    case 'training':
      return top.percentage !== undefined ? `$(beaker~spin) Kenning: training ${top.percentage}%` : '$(beaker~spin) Kenning: training';
    case 'indexing': {
      // With several folders indexing at once, show the least advanced one.
      const pcts = entries.filter(([, f]) => f.phase === 'indexing' && f.percentage !== undefined).map(([, f]) => f.percentage!);
      return pcts.length > 0 ? `$(sync~spin) Kenning: indexing ${Math.min(...pcts)}%` : '$(sync~spin) Kenning: indexing';
    }
    default:
      return '$(search) Kenning: idle';
  }
}

function describe(name: string, f: FolderStatus, prefix: boolean): string {
  const lead = prefix ? `${name}: ` : '';
  const s = f.status;
  const counts = s ? ` — ${s.files} files, ${s.chunks} chunks${s.pending ? `, ${s.pending} waiting for vectors` : ''}` : '';
  const model = s ? `\n${prefix ? '  ' : ''}model ${s.model.name}@${s.model.version}` : '';
  switch (f.phase) {
    case 'failed':
      return `${lead}not running: ${f.message ?? 'the server stopped'}`;
    case 'stopped':
      return `${lead}stopped${f.message ? `: ${f.message}` : ''}`;
    case 'starting':
      return `${lead}starting the server…`;
    case 'indexing':
    case 'training': {
      const pct = f.percentage !== undefined ? ` ${f.percentage}%` : '';
      return `${lead}${f.phase}${pct}${f.message ? ` (${f.message})` : ''}${counts}${model}`;
    }
    default:
      return `${lead}idle${counts}${model}`;
  }
}

/**
 * When a server dies: restart it if it had been up a while, at most
 * `maxRestarts` times in `windowMs`; never when it dies while starting (a
 * broken install or bad settings would only fail again, louder).
 */
export class RestartPolicy {
  private restarts: number[] = [];
  private upSince: number | undefined;

  constructor(private readonly options: { maxRestarts: number; windowMs: number; minUptimeMs: number }) {}

  /** A new server is starting (after a stop the user asked for, the old uptime does not count). */
  starting(): void {
    this.upSince = undefined;
  }

  /** The server answered `initialize`. */
  up(now: number): void {
    this.upSince = now;
  }

  /** The connection closed unexpectedly: 'restart' or 'give-up'. */
  closed(now: number): 'restart' | 'give-up' {
    const upSince = this.upSince;
    this.upSince = undefined;
    if (upSince === undefined || now - upSince < this.options.minUptimeMs) return 'give-up';
    this.restarts = this.restarts.filter((t) => now - t < this.options.windowMs);
    if (this.restarts.length >= this.options.maxRestarts) return 'give-up';
    this.restarts.push(now);
    return 'restart';
  }
}
