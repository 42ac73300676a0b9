/**
 * The extension's client logic against the real `kenning serve`, over a real
 * LSP connection on stdio (the same vscode-jsonrpc connection that
 * vscode-languageclient uses inside VS Code).
 *
 * The server: $KENNING_SERVER (a command line), else the repository's
 * .venv/bin/kenning, else `python3 -m kenning.server.cli serve`. The fixture workspace
 * is copied to a temporary folder with its own KENNING_INDEX_DIR.
 */

import assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  createProtocolConnection,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  WorkspaceSymbolRequest,
  type ProtocolConnection,
} from 'vscode-languageserver-protocol/node';
import { LatestOnly } from '../src/core/debounce';
import {
  INDEX_CHANGED,
  REINDEX,
  RELATED,
  SEARCH,
  STATUS,
  TRAIN,
  type RelatedResponse,
  type ReindexResponse,
  type SearchResponse,
  type StatusResponse,
  type TrainResponse,
  type WorkDoneProgressValue,
} from '../src/core/protocol';
import { mergeAnswers, relatedAnswer, searchParams, type MergedAnswer } from '../src/core/search';
import {
  DEFAULT_SETTINGS,
  explainStartFailure,
  initializationOptions,
  isProblem,
  resolveServerCommand,
  type KenningSettings,
  type ServerCommand,
} from '../src/core/settings';
import { StatusBoard } from '../src/core/status';

const HERE = path.resolve(__dirname, '..', '..'); // editors/vscode (this file runs from out/test/)
const REPO = path.resolve(HERE, '..', '..');
const STARTUP_MS = 240_000; // a cold model load on a busy 2-core machine takes a while

function serverSettings(): KenningSettings {
  const fromEnv = process.env.KENNING_SERVER?.trim();
  const venv = path.join(REPO, '.venv', 'bin', 'kenning');
  const settings: KenningSettings = structuredClone(DEFAULT_SETTINGS);
  if (fromEnv) settings.server.command = fromEnv.split(/\s+/);
  else if (fs.existsSync(venv)) settings.server.command = [venv, 'serve'];
  else settings.server.python = 'python3';
  return settings;
}

const lookup = {
  platform: process.platform,
  isExecutable: (f: string) => {
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  },
  which: (name: string) =>
    (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, name)).find((f) => lookup.isExecutable(f)),
};

function waitFor<T>(what: string, ms: number, poll: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = async () => {
      let value: T | undefined;
      try {
        value = await poll();
      } catch (error) {
        if (Date.now() > deadline) return reject(error);
      }
      if (value !== undefined) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(attempt, 250);
    };
    void attempt();
  });
}

describe('the client logic against a real kenning serve', { timeout: STARTUP_MS + 120_000 }, () => {
  let tmp: string;
  let workspace: string;
  let child: cp.ChildProcess;
  let connection: ProtocolConnection;
  let command: ServerCommand;
  let stderr = '';
  const board = new StatusBoard();
  const progress: WorkDoneProgressValue[] = [];
  const indexChanged: unknown[] = [];
  const shown: string[] = [];
  let settings: KenningSettings;
  let place: { folder: string; home: string };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kenning-vscode-'));
    workspace = path.join(tmp, 'workspace');
    fs.cpSync(path.join(HERE, 'test', 'fixture'), workspace, { recursive: true });
    settings = serverSettings();
    // What a user would put in settings.json: leave the README out, never retrain in the background.
    settings.exclude = ['README.md'];
    settings.train.schedule = 'off';
    place = { folder: workspace, home: os.homedir() };
    const resolved = resolveServerCommand(settings, place, lookup);
    assert.ok(!isProblem(resolved), `no server to test against: ${JSON.stringify(resolved)}`);
    command = resolved;
    child = cp.spawn(command.command, command.args, {
      cwd: command.source === 'kenning.server.python' ? REPO : workspace,
      env: { ...process.env, ...command.env, KENNING_INDEX_DIR: path.join(tmp, 'index') },
      stdio: 'pipe',
    });
    child.stderr!.on('data', (d) => {
      stderr += d.toString();
    });
    connection = createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    connection.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
      const sub = connection.onProgress(WorkDoneProgress.type, token, (value) => {
        progress.push(value as WorkDoneProgressValue);
        board.progress('workspace', String(token), value as WorkDoneProgressValue);
        if (value.kind === 'end') sub.dispose();
      });
    });
    connection.onNotification(INDEX_CHANGED, (params) => {
      indexChanged.push(params);
    });
    connection.onNotification('window/logMessage', () => {});
    connection.onNotification('window/showMessage', (m: { message: string }) => {
      shown.push(m.message);
      stderr += `showMessage: ${JSON.stringify(m)}\n`;
    });
    // As the extension's middleware answers it: the settings initializationOptions would carry.
    connection.onRequest('workspace/configuration', (params: { items: { section?: string }[] }) =>
      params.items.map((item) => (item.section === 'kenning' ? initializationOptions(settings, place) : null)));
    connection.listen();
    const uri = pathToFileURL(workspace).href;
    const init = await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: uri,
      workspaceFolders: [{ uri, name: 'workspace' }],
      capabilities: { window: { workDoneProgress: true }, workspace: { symbol: {}, configuration: true } },
      initializationOptions: initializationOptions(settings, place),
    });
    assert.ok(init.capabilities.workspaceSymbolProvider, 'workspace/symbol is advertised');
    await connection.sendNotification(InitializedNotification.type, {});
  });

  after(async () => {
    try {
      await Promise.race([connection.sendRequest(ShutdownRequest.type), new Promise((r) => setTimeout(r, 10_000))]);
      await connection.sendNotification(ExitNotification.type);
    } catch {
      // the test already failed; just clean up
    }
    const exited = await Promise.race([
      new Promise<boolean>((r) => child.once('exit', () => r(true))),
      new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
    ]);
    if (!exited) child.kill('SIGKILL');
    connection.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('indexes the workspace with the settings sent as initializationOptions, reporting progress', async () => {
    const status = await waitFor('the first index', STARTUP_MS, async () => {
      const s = await connection.sendRequest<StatusResponse>(STATUS, {});
      return s.state === 'idle' && s.chunks > 0 && s.pending === 0 ? s : undefined;
    }).catch((error) => {
      throw new Error(`${error}\nserver stderr:\n${stderr}`);
    });
    board.status('workspace', status);
    assert.equal(status.files, 4, 'the README is excluded by the exclude setting');
    assert.ok(status.model.name.length > 0);
    assert.equal(board.paint().text, '$(search) Kenning: idle');
    const kinds = progress.map((p) => p.kind);
    assert.equal(kinds[0], 'begin', `progress: ${JSON.stringify(progress)}`);
    assert.equal(kinds.at(-1), 'end');
    assert.ok(progress.some((p) => p.kind === 'report' && typeof p.percentage === 'number'));
    assert.ok(indexChanged.length > 0, 'kenning/indexChanged after the batch landed');
  });

  it('searches as the user types: one request for the settled text, best result first', async () => {
    const sent: string[] = [];
    const answer = await new Promise<MergedAnswer>((resolve, reject) => {
      const search = new LatestOnly<MergedAnswer>(
        async (query, token) => {
          sent.push(query);
          const params = searchParams(query, { limit: 5 })!;
          const response = await connection.sendRequest<SearchResponse>(SEARCH, params, token);
          return mergeAnswers([{ folder: { name: 'workspace', uri: pathToFileURL(workspace).href }, response }], 5);
        },
        { onResult: (_q, r) => r && resolve(r), onError: (_q, e) => reject(e) },
        { delayMs: 100, isEmpty: (q) => searchParams(q) === undefined },
      );
      for (const text of ['r', 'retry a fail', 'retry a failed network request with exponential backoff']) search.update(text);
    });
    assert.deepEqual(sent, ['retry a failed network request with exponential backoff']);
    const top = answer.rows[0];
    assert.equal(top.label, '$(symbol-function) retry_with_backoff');
    assert.equal(top.description, 'net/retry.py:7');
    assert.match(top.detail ?? '', /^def retry_with_backoff\(/);
    assert.equal(top.uri, pathToFileURL(path.join(workspace, 'net', 'retry.py')).href);
    assert.deepEqual(top.range.start, { line: 6, character: 0 });
    assert.match(answer.summary, /^\d+ results · [\d.]+ ms$/);
  });

  it('finds code in other languages by meaning', async () => {
    const response = await connection.sendRequest<SearchResponse>(SEARCH, searchParams('turn an article title into a url', { limit: 3 }));
    const rows = mergeAnswers([{ folder: { name: 'workspace', uri: pathToFileURL(workspace).href }, response }], 3).rows;
    assert.equal(rows[0].label, '$(symbol-function) slugify');
    assert.equal(rows[0].description, 'text/slugify.ts:3', 'the chunk starts at the doc comment');
  });

  it('cancels a search in flight and keeps serving', async () => {
    const search = new LatestOnly<SearchResponse>(
      (q, token) => connection.sendRequest<SearchResponse>(SEARCH, { query: q }, token),
      { onResult: () => {}, onError: () => {} },
      { delayMs: 0 },
    );
    search.now('least recently used cache');
    search.dispose(); // cancels: the client sends $/cancelRequest
    const response = await connection.sendRequest<SearchResponse>(SEARCH, { query: 'least recently used cache', limit: 1 });
    assert.equal(response.results[0].path, 'storage/lru.js');
  });

  it('gets an error that names the field for bad params', async () => {
    await assert.rejects(connection.sendRequest(SEARCH, { query: 'retry', limit: '5' }), (error: { code: number; message: string }) => {
      assert.equal(error.code, -32602);
      assert.match(error.message, /limit/);
      return true;
    });
  });

  it('finds code similar to the definition at a position, leaving it out', async () => {
    const uri = pathToFileURL(path.join(workspace, 'billing', 'invoice.py')).href;
    const response = await connection.sendRequest<RelatedResponse>(RELATED, {
      uri,
      position: { line: 14, character: 8 },
      limit: 5,
    });
    const answer = relatedAnswer(response, { name: 'workspace', uri: pathToFileURL(workspace).href }, 5);
    assert.equal(answer.title, 'Similar to invoice_total · billing/invoice.py:13');
    assert.ok(answer.rows.length > 0);
    assert.ok(!answer.rows.some((r) => r.description === 'billing/invoice.py:13'), 'the code itself is left out');
    await assert.rejects(
      connection.sendRequest(RELATED, { uri, position: { line: 400, character: 0 } }),
      (error: { code: number; message: string }) => {
        assert.equal(error.code, -32602);
        assert.match(error.message, /line 401 is past the end of billing\/invoice.py/);
        return true;
      },
    );
  });

  it('applies changed settings without a restart when told they changed', async () => {
    settings.exclude = ['README.md', 'storage/'];
    const before = shown.length;
    await connection.sendNotification('workspace/didChangeConfiguration', { settings: null });
    const status = await waitFor('the re-index without storage/', 60_000, async () => {
      const s = await connection.sendRequest<StatusResponse>(STATUS, {});
      return s.state === 'idle' && s.files === 3 ? s : undefined;
    });
    assert.equal(status.files, 3);
    assert.ok(shown.slice(before).some((m) => /exclude changed for workspace: re-indexing/.test(m)), shown.join('\n'));
  });

  it('answers workspace/symbol, reindex and train', async () => {
    const symbols = await connection.sendRequest(WorkspaceSymbolRequest.type, { query: 'sales tax on an invoice' });
    assert.ok(Array.isArray(symbols) && symbols.length > 0);
    assert.equal((symbols[0] as { name: string }).name, 'invoice_total');
    const reindex = await connection.sendRequest<ReindexResponse>(REINDEX, {});
    assert.equal(typeof reindex.queued, 'number');
    const train = await connection.sendRequest<TrainResponse>(TRAIN, { force: true });
    assert.equal(typeof train.started, 'boolean');
    if (!train.started) assert.equal(typeof train.reason, 'string');
  });
});

describe('a server that cannot start', () => {
  it('is explained in one sentence with the fix', async (t) => {
    const python = lookup.which('python3');
    if (!python) return t.skip('no python3 on the PATH');
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kenning-vscode-'));
    const probe = cp.spawnSync(python, ['-c', 'import kenning.server.cli'], { cwd });
    if (probe.status === 0) return t.skip(`${python} has Kenning installed`);
    const command: ServerCommand = { command: python, args: ['-m', 'kenning.server.cli', 'serve'], source: 'kenning.server.python', env: {} };
    const run = cp.spawnSync(command.command, command.args, { cwd, encoding: 'utf8', input: '' });
    fs.rmSync(cwd, { recursive: true, force: true });
    const problem = explainStartFailure(command, { code: run.status, signal: run.signal }, run.stderr.split('\n'));
    assert.match(problem.message, /^Kenning: the server exited with code 1 while starting: .*No module named/);
    assert.match(problem.fix, /-m pip install/);
  });
});
