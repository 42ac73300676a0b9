/**
 * One Kenning language client per workspace folder (the server indexes one
 * folder each): it starts `kenning serve` over stdio, forwards the folder's
 * settings as `initializationOptions`, follows `$/progress` and
 * `kenning/indexChanged` into the status board, and turns a missing or failing
 * server into exactly one notification that says what to do.
 */

import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  type ClientCapabilities,
  type FeatureState,
  type LanguageClientOptions,
  type ServerOptions,
  type StaticFeature,
} from 'vscode-languageclient/node';
import {
  FEEDBACK,
  INDEX_CHANGED,
  REINDEX,
  RELATED,
  SEARCH,
  STATUS,
  TRAIN,
  type FeedbackParams,
  type RelatedParams,
  type RelatedResponse,
  type ReindexResponse,
  type SearchParams,
  type SearchResponse,
  type StatusResponse,
  type TrainResponse,
  type WorkDoneProgressValue,
} from './core/protocol';
import {
  explainStartFailure,
  initializationOptions,
  isProblem,
  resolveServerCommand,
  type CommandProblem,
  type KenningSettings,
  type ServerCommand,
} from './core/settings';
import { RestartPolicy, type StatusBoard } from './core/status';

/** The `kenning.*` settings of one folder. */
export function readSettings(folder: vscode.WorkspaceFolder): KenningSettings {
  const c = vscode.workspace.getConfiguration('kenning', folder.uri);
  return {
    server: {
      command: c.get<string[]>('server.command', []),
      python: c.get<string>('server.python', ''),
      env: c.get<Record<string, string>>('server.env', {}),
    },
    model: c.get<string>('model', ''),
    device: c.get<string>('device', ''),
    indexDir: c.get<string>('indexDir', ''),
    include: c.get<string[]>('include', []),
    exclude: c.get<string[]>('exclude', []),
    maxFileBytes: c.get<number | null>('maxFileBytes', null),
    learnFromPicks: c.get<boolean | null>('learnFromPicks', null),
    train: {
      schedule: c.get<string>('train.schedule', ''),
      onCpu: c.get<boolean | null>('train.onCpu', null),
      minNewChunks: c.get<number | null>('train.minNewChunks', null),
      adapter: c.get<boolean | null>('train.adapter', null),
    },
    search: {
      limit: c.get<number>('search.limit', 20),
      mode: c.get<'hybrid' | 'semantic' | 'lexical'>('search.mode', 'hybrid'),
      debounceMs: c.get<number>('search.debounceMs', 150),
    },
  };
}

const lookup = {
  platform: process.platform,
  isExecutable(file: string): boolean {
    try {
      fs.accessSync(file, process.platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  },
  which(name: string): string | undefined {
    const exts = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      if (!dir) continue;
      for (const ext of exts) {
        const candidate = path.join(dir, name + ext);
        if (lookup.isExecutable(candidate)) return candidate;
      }
    }
    return undefined;
  },
};

/** Shows each distinct problem once per session, with buttons that lead to the fix. */
export class Notifier {
  private readonly shown = new Set<string>();

  constructor(private readonly output: vscode.LogOutputChannel) {}

  /** Forget what was shown (after a restart the user asked for, a problem may be news again). */
  reset(): void {
    this.shown.clear();
  }

  problem(problem: CommandProblem): void {
    const text = /[.!?]$/.test(problem.message) ? `${problem.message} ${problem.fix}` : `${problem.message}. ${problem.fix}`;
    this.output.error(text);
    const key = problem.message;
    if (this.shown.has(key)) return;
    this.shown.add(key);
    void vscode.window.showErrorMessage(text, 'Open Settings', 'Show Log').then((pick) => {
      if (pick === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'kenning.server');
      if (pick === 'Show Log') this.output.show(true);
    });
  }
}

/**
 * The language client, with the library's own error notifications turned
 * into log lines: FolderClient decides what the user sees, once.
 */
class QuietLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown, _showNotification?: boolean | 'force'): void {
    super.error(message, data, false);
  }
}

/**
 * Follows work-done progress created by the server. It takes over
 * `window/workDoneProgress/create` from the library's own progress feature
 * (registered after it), so the status-bar item is the one place that shows it.
 */
class ProgressTracker implements StaticFeature {
  constructor(
    private readonly client: LanguageClient,
    private readonly onValue: (token: string, value: WorkDoneProgressValue) => void,
  ) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
      const key = String(token);
      const sub = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
        this.onValue(key, value as WorkDoneProgressValue);
        if (value.kind === 'end') sub.dispose();
      });
    });
  }

  getState(): FeatureState {
    return { kind: 'static' };
  }

  clear(): void {}
}

const STDERR_TAIL = 40;

/** One server process: what it wrote to stderr last, and how it ended. */
interface ServerRun {
  child: cp.ChildProcess;
  stderrTail: string[];
  exit?: { code: number | null; signal: string | null };
}

export class FolderClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  /** The newest server process; an older one still exiting never touches this. */
  private run: ServerRun | undefined;
  private command: ServerCommand | undefined;
  private failureReported = false;
  private readonly policy = new RestartPolicy({ maxRestarts: 3, windowMs: 3 * 60_000, minUptimeMs: 10_000 });
  private statusTimer: NodeJS.Timeout | undefined;
  private statusInFlight = false;
  private disposed = false;
  private lifecycle: Promise<void> = Promise.resolve();

  constructor(
    readonly folder: vscode.WorkspaceFolder,
    private readonly output: vscode.LogOutputChannel,
    private readonly board: StatusBoard,
    private readonly notifier: Notifier,
    private readonly changed: () => void,
  ) {}

  get name(): string {
    return this.folder.name;
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /** Start the server; starts and restarts asked for in a burst run one after another. */
  start(): Promise<void> {
    this.lifecycle = this.lifecycle.then(() => this.launch());
    return this.lifecycle;
  }

  /** Stop, then start again (after a settings change or on request). */
  restart(): Promise<void> {
    this.lifecycle = this.lifecycle.then(async () => {
      await this.stop();
      if (!this.disposed) await this.launch();
    });
    return this.lifecycle;
  }

  private async launch(): Promise<void> {
    const settings = readSettings(this.folder);
    const place = { folder: this.folder.uri.fsPath, home: os.homedir() };
    const resolved = resolveServerCommand(settings, place, lookup);
    this.failureReported = false;
    if (isProblem(resolved)) {
      this.fail(resolved);
      return;
    }
    this.command = resolved;
    const options = initializationOptions(settings, place);
    this.output.info(`[${this.name}] starting ${[resolved.command, ...resolved.args].join(' ')} (from ${resolved.source})`);
    this.output.info(`[${this.name}] initializationOptions ${JSON.stringify(options)}`);
    this.board.starting(this.name);
    this.policy.starting();
    this.changed();

    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file', pattern: `${this.folder.uri.fsPath}/**/*` }],
      workspaceFolder: this.folder,
      initializationOptions: options,
      outputChannel: this.output,
      traceOutputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => this.onClosed(),
      },
      initializationFailedHandler: (error) => {
        this.reportStartFailure(error instanceof Error ? error.message : String(error));
        return false;
      },
      stdioOptions: {
        stdout: () => {},
        stderr: (input, channel) => this.showStderr(input, channel),
      },
      middleware: {
        workspace: {
          // The server pulls its settings after workspace/didChangeConfiguration: answer
          // the `kenning` section as initializationOptions carries it (set values only).
          configuration: (params, token, next) => {
            if (!params.items.some((item) => item.section === 'kenning')) return next(params, token);
            const settings = initializationOptions(readSettings(this.folder), place);
            return params.items.map((item) => (item.section === 'kenning' ? settings : null));
          },
        },
      },
    };
    const client = new QuietLanguageClient('kenning', `Kenning (${this.name})`, this.serverOptions(resolved), clientOptions);
    client.registerFeature(new ProgressTracker(client, (token, value) => {
      this.board.progress(this.name, token, value);
      this.changed();
      if (value.kind === 'end') void this.refreshStatus();
    }));
    client.onNotification(INDEX_CHANGED, () => this.scheduleStatus(500));
    // Also after the library restarts a crashed server by itself.
    client.onDidChangeState(({ newState }) => {
      if (newState === State.Running) {
        this.policy.up(Date.now());
        void this.refreshStatus();
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.reportStartFailure(error instanceof Error ? error.message : String(error));
    }
  }

  async stop(): Promise<void> {
    this.clearStatusTimer();
    const client = this.client;
    const child = this.run?.child;
    this.client = undefined;
    if (client !== undefined) {
      try {
        if (client.isRunning()) await client.stop(3000);
      } catch (error) {
        this.output.warn(`[${this.name}] stopping the server: ${String(error)}`);
      }
    }
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      // The server saves its vectors on exit; give it a moment before insisting.
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000));
      if ((await Promise.race([exited, timeout])) === 'timeout') child.kill();
    }
  }

  dispose(): void {
    this.disposed = true;
    void this.stop();
    this.board.remove(this.name);
  }

  // -- requests --------------------------------------------------------------------

  async search(params: SearchParams, token?: vscode.CancellationToken): Promise<SearchResponse> {
    return this.ready().sendRequest<SearchResponse>(SEARCH, params, token);
  }

  /** `kenning/feedback`: the user opened a result. A notification: nothing to wait for. */
  async feedback(params: FeedbackParams): Promise<void> {
    if (this.running) await this.ready().sendNotification(FEEDBACK, params);
  }

  async related(params: RelatedParams): Promise<RelatedResponse> {
    return this.ready().sendRequest<RelatedResponse>(RELATED, params);
  }

  /**
   * The folder's settings changed: the server pulls them (workspace/configuration, answered
   * by the middleware above) and applies them without a restart, re-indexing if they ask for it.
   */
  settingsChanged(): void {
    if (this.client === undefined || !this.running) return;
    void this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
  }

  async status(): Promise<StatusResponse> {
    return this.ready().sendRequest<StatusResponse>(STATUS, {});
  }

  async reindex(): Promise<ReindexResponse> {
    const answer = await this.ready().sendRequest<ReindexResponse>(REINDEX, {});
    this.scheduleStatus(300);
    return answer;
  }

  async train(): Promise<TrainResponse> {
    const answer = await this.ready().sendRequest<TrainResponse>(TRAIN, { force: true });
    this.scheduleStatus(300);
    return answer;
  }

  /** Ask `kenning/status` now, and again every few seconds while the folder is busy. */
  async refreshStatus(): Promise<void> {
    this.clearStatusTimer();
    if (!this.running || this.statusInFlight) return;
    this.statusInFlight = true;
    try {
      this.board.status(this.name, await this.status());
      this.changed();
    } catch (error) {
      this.output.debug(`[${this.name}] kenning/status: ${String(error)}`);
    } finally {
      this.statusInFlight = false;
    }
    const mine = this.board.get(this.name);
    if (mine && (mine.phase === 'indexing' || mine.phase === 'training' || mine.phase === 'starting')) {
      this.scheduleStatus(3000);
    }
  }

  private ready(): LanguageClient {
    if (this.client === undefined || !this.running) {
      const why = this.board.get(this.name)?.message;
      throw new Error(why ? `Kenning is not running for ${this.name}: ${why}` : `Kenning is not running for ${this.name}`);
    }
    return this.client;
  }

  private scheduleStatus(ms: number): void {
    if (this.statusTimer !== undefined) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      void this.refreshStatus();
    }, ms);
  }

  private clearStatusTimer(): void {
    if (this.statusTimer !== undefined) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
  }

  // -- the process -----------------------------------------------------------------

  private serverOptions(command: ServerCommand): ServerOptions {
    return () =>
      new Promise((resolve, reject) => {
        const child = cp.spawn(command.command, command.args, {
          cwd: this.folder.uri.fsPath,
          env: { ...process.env, ...command.env },
          stdio: 'pipe',
          windowsHide: true,
        });
        const run: ServerRun = { child, stderrTail: [] };
        this.run = run;
        // The tail explains a failed start; showStderr puts the same lines in the log.
        readline.createInterface({ input: child.stderr, crlfDelay: Infinity, terminal: false, historySize: 0 })
          .on('line', (line) => {
            run.stderrTail.push(line);
            if (run.stderrTail.length > STDERR_TAIL) run.stderrTail.shift();
          });
        child.once('error', (error) => reject(error));
        child.once('spawn', () => resolve(child));
        // 'close', not 'exit': by then stderr has been read to the end.
        child.once('close', (code, signal) => {
          run.exit = { code, signal };
          this.output.info(`[${this.name}] server exited (${signal ?? `code ${code}`})`);
        });
      });
  }

  /**
   * Server stderr in the log. Kenning's own log lines ("kenning: ...") also
   * arrive as `window/logMessage` once the connection is up, so from then on
   * they are not shown twice.
   */
  private showStderr(input: NodeJS.ReadableStream, channel: vscode.LogOutputChannel): void {
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on('line', (line) => {
      if (this.running && line.startsWith('kenning: ')) return;
      channel.appendLine(line);
    });
  }

  private onClosed(): { action: CloseAction; handled: boolean } {
    const decision = this.policy.closed(Date.now());
    if (decision === 'restart' && !this.disposed) {
      this.output.warn(`[${this.name}] the server stopped unexpectedly; restarting it`);
      this.board.starting(this.name);
      this.changed();
      return { action: CloseAction.Restart, handled: true };
    }
    this.reportStartFailure('the connection to the server closed');
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  /** One notification for one failed start, explained from the exit code and stderr. */
  private reportStartFailure(reason: string): void {
    if (this.failureReported || this.disposed) return;
    this.failureReported = true;
    // stderr and the exit status may still be on their way: wait for them briefly.
    const deadline = Date.now() + 1500;
    const run = this.run;
    const report = () => {
      if (run !== undefined && run.exit === undefined && Date.now() < deadline) {
        setTimeout(report, 100);
        return;
      }
      const command = this.command;
      let problem: CommandProblem;
      if (command !== undefined && /ENOENT|EACCES/.test(reason)) {
        problem = {
          message: `Kenning: cannot run the server \`${command.command}\` (${reason}).`,
          fix: 'Check `kenning.server.command` (or `kenning.server.python`).',
        };
      } else if (command !== undefined && run !== undefined && (run.exit !== undefined || run.stderrTail.length > 0)) {
        problem = explainStartFailure(command, run.exit ?? { code: null, signal: null }, run.stderrTail);
      } else {
        problem = { message: `Kenning: the server could not start (${reason}).`, fix: 'The "Kenning" output has the server log.' };
      }
      this.fail(problem);
    };
    setTimeout(report, 200);
  }

  private fail(problem: CommandProblem): void {
    this.board.failed(this.name, problem.message.replace(/^Kenning: /, ''));
    this.changed();
    this.notifier.problem(problem);
  }
}
