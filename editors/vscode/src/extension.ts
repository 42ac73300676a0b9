/**
 * Kenning for VS Code: one language client per workspace folder, the
 * "Kenning: ..." commands, the status-bar item and the "Kenning" log.
 */

import * as vscode from 'vscode';
import { FolderClient, Notifier, readSettings } from './client';
import type { StatusResponse } from './core/protocol';
import { StatusBoard } from './core/status';
import { semanticSearch } from './searchPick';
import { findSimilar } from './similarPick';

/** Settings the server reads (applied live); `kenning.search.*` and `trace` are the extension's own. */
const SERVER_SETTINGS = ['model', 'device', 'indexDir', 'include', 'exclude', 'maxFileBytes', 'train'];

let kenning: Kenning | undefined;

export function activate(context: vscode.ExtensionContext): void {
  kenning = new Kenning();
  context.subscriptions.push(kenning);
  kenning.startAll();
}

export async function deactivate(): Promise<void> {
  await kenning?.stopAll();
  kenning = undefined;
}

class Kenning implements vscode.Disposable {
  private readonly output = vscode.window.createOutputChannel('Kenning', { log: true });
  private readonly board = new StatusBoard();
  private readonly notifier = new Notifier(this.output);
  private readonly item = vscode.window.createStatusBarItem('kenning.status', vscode.StatusBarAlignment.Left, 10);
  private readonly clients = new Map<string, FolderClient>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.item.name = 'Kenning';
    this.item.command = 'kenning.showStatus';
    this.paint();
    this.item.show();
    const command = (id: string, fn: () => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, fn));
    command('kenning.search', () => this.search());
    command('kenning.findSimilar', () => this.findSimilar());
    command('kenning.reindex', () => this.reindex());
    command('kenning.train', () => this.train());
    command('kenning.showStatus', () => this.showStatus());
    command('kenning.restart', () => this.restartAll());
    command('kenning.showLog', () => this.output.show(true));
    this.disposables.push(
      vscode.workspace.onDidChangeWorkspaceFolders((e) => {
        for (const folder of e.removed) this.remove(folder);
        for (const folder of e.added) this.add(folder);
      }),
      vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
    );
  }

  startAll(): void {
    for (const folder of vscode.workspace.workspaceFolders ?? []) this.add(folder);
    this.paint();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.stop()));
  }

  dispose(): void {
    for (const client of this.clients.values()) client.dispose();
    this.clients.clear();
    for (const d of this.disposables) d.dispose();
    this.item.dispose();
    this.output.dispose();
  }

  // -- folders ---------------------------------------------------------------------

  private add(folder: vscode.WorkspaceFolder): void {
    if (folder.uri.scheme !== 'file' || this.clients.has(folder.uri.toString())) return;
    const client = new FolderClient(folder, this.output, this.board, this.notifier, () => this.paint());
    this.clients.set(folder.uri.toString(), client);
    void client.start();
  }

  private remove(folder: vscode.WorkspaceFolder): void {
    const key = folder.uri.toString();
    this.clients.get(key)?.dispose();
    this.clients.delete(key);
    this.paint();
  }

  /**
   * `kenning.server.*` (how the server is started) restarts it; the index settings go to the
   * running server, which applies them live and says when they start a re-index.
   */
  private configurationChanged(e: vscode.ConfigurationChangeEvent): void {
    for (const client of this.clients.values()) {
      const uri = client.folder.uri;
      if (e.affectsConfiguration('kenning.server', uri)) {
        this.output.info(`[${client.name}] the server command changed; restarting the server`);
        this.notifier.reset();
        void client.restart();
      } else if (SERVER_SETTINGS.some((n) => e.affectsConfiguration(`kenning.${n}`, uri))) {
        this.output.info(`[${client.name}] settings changed; the server applies them`);
        client.settingsChanged();
      }
    }
  }

  private paint(): void {
    const painted = this.board.paint();
    this.item.text = painted.text;
    this.item.tooltip = painted.tooltip;
    this.item.backgroundColor = painted.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  // -- commands --------------------------------------------------------------------

  private async search(): Promise<void> {
    const clients = [...this.clients.values()];
    const folder = vscode.window.activeTextEditor
      ? vscode.workspace.getWorkspaceFolder(vscode.window.activeTextEditor.document.uri)
      : vscode.workspace.workspaceFolders?.[0];
    const settings = folder ? readSettings(folder).search : { limit: 20, mode: 'hybrid' as const, debounceMs: 150 };
    await semanticSearch(clients, settings);
  }

  private async findSimilar(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const folder = editor ? vscode.workspace.getWorkspaceFolder(editor.document.uri) : undefined;
    const limit = folder ? readSettings(folder).search.limit : 20;
    await findSimilar([...this.clients.values()], limit);
  }

  private async reindex(): Promise<void> {
    await this.eachRunning('Reindex', async (client) => {
      const { queued } = await client.reindex();
      return `re-indexing ${client.name} (${queued} files)`;
    });
  }

  private async train(): Promise<void> {
    await this.eachRunning('Retrain', async (client) => {
      const answer = await client.train();
      return answer.started
        ? `training started for ${client.name}`
        : `${client.name}: training did not start${answer.reason ? `: ${answer.reason}` : ''}`;
    });
  }

  private async showStatus(): Promise<void> {
    const clients = [...this.clients.values()];
    if (clients.length === 0) {
      void vscode.window.showInformationMessage('Kenning: open a folder to index and search it.');
      return;
    }
    const lines = await Promise.all(clients.map(async (client) => {
      if (!client.running) {
        const why = this.board.get(client.name)?.message ?? 'not running';
        return { short: `${client.name}: ${why}`, long: `${client.name}: ${why}` };
      }
      try {
        const status = await client.status();
        this.board.status(client.name, status);
        return { short: `${client.name}: ${summary(status)}`, long: details(client.name, status) };
      } catch (error) {
        const text = `${client.name}: ${error instanceof Error ? error.message : String(error)}`;
        return { short: text, long: text };
      }
    }));
    this.paint();
    for (const line of lines) this.output.info(line.long);
    const anyDown = clients.some((c) => !c.running);
    const actions = anyDown ? ['Restart', 'Show Log'] : ['Show Log', 'Reindex'];
    const pick = await vscode.window.showInformationMessage(`Kenning — ${lines.map((l) => l.short).join(' · ')}`, ...actions);
    if (pick === 'Show Log') this.output.show(true);
    if (pick === 'Reindex') await this.reindex();
    if (pick === 'Restart') await this.restartAll();
  }

  private async restartAll(): Promise<void> {
    this.notifier.reset();
    if (this.clients.size === 0) this.startAll();
    await Promise.all([...this.clients.values()].map((c) => c.restart()));
  }

  /** Run `fn` on each running folder client and tell the user the outcome in one message. */
  private async eachRunning(what: string, fn: (client: FolderClient) => Promise<string>): Promise<void> {
    const clients = [...this.clients.values()];
    const running = clients.filter((c) => c.running);
    if (running.length === 0) {
      const pick = await vscode.window.showWarningMessage(
        `Kenning: ${what.toLowerCase()} needs the server, and it is not running.`, 'Show Status');
      if (pick === 'Show Status') await this.showStatus();
      return;
    }
    const outcomes = await Promise.allSettled(running.map(fn));
    const text = outcomes
      .map((o, i) => (o.status === 'fulfilled' ? o.value : `${running[i].name}: ${o.reason instanceof Error ? o.reason.message : String(o.reason)}`))
      .join(' · ');
    this.output.info(`${what}: ${text}`);
    if (outcomes.some((o) => o.status === 'rejected')) void vscode.window.showWarningMessage(`Kenning: ${text}`);
    else void vscode.window.showInformationMessage(`Kenning: ${text}`);
  }
}

function summary(s: StatusResponse): string {
  const waiting = s.pending > 0 ? `, ${s.pending} waiting for vectors` : '';
  return `${s.state}, ${s.files} files, ${s.chunks} chunks${waiting}, model ${s.model.name}@${s.model.version}`;
}

function describeRun(run: Record<string, unknown>): string {
  const when = typeof run.time === 'number' ? new Date(run.time * 1000).toISOString().slice(0, 16).replace('T', ' ') : '?';
  return `${String(run.status ?? '?')} at ${when}${run.reason ? `: ${String(run.reason)}` : ''}`;
}

function details(name: string, s: StatusResponse): string {
  const parts = [
    `${name}: ${summary(s)}`,
    s.workspace ? `  workspace ${s.workspace}` : '',
    s.index_dir ? `  index ${s.index_dir}${s.index_bytes ? ` (${(s.index_bytes / 1048576).toFixed(1)} MiB)` : ''}` : '',
    s.generation !== undefined && s.generation !== null ? `  generation ${s.generation}` : '',
    s.last_training ? `  last training: ${describeRun(s.last_training)}` : '  not trained on this workspace yet',
    ...(s.warnings ?? []).map((w) => `  warning: ${w}`),
  ];
  return parts.filter((p) => p !== '').join('\n');
}
