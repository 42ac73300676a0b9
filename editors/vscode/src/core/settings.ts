/**
 * The extension's settings, turned into what the server needs: the command
 * that starts it and the `initializationOptions` it reads (docs/protocol.md §3).
 *
 * Pure functions over plain values, so they are tested without VS Code. The
 * caller (client.ts) reads `vscode.workspace.getConfiguration('kenning', folder)`
 * into a `KenningSettings` and supplies the file-system look-ups.
 */

import * as path from 'node:path';

/** The `kenning.*` settings as VS Code returns them (defaults mean "not set"). */
export interface KenningSettings {
  server: {
    command: string[];
    python: string;
    env: Record<string, string>;
  };
  model: string;
  device: string;
  indexDir: string;
  include: string[];
  exclude: string[];
  maxFileBytes: number | null;
  learnFromPicks: boolean | null;
  train: {
    schedule: string;
    onCpu: boolean | null;
    minNewChunks: number | null;
    adapter: boolean | null;
  };
  search: {
    limit: number;
    mode: 'hybrid' | 'semantic' | 'lexical';
    debounceMs: number;
  };
}

export const DEFAULT_SETTINGS: KenningSettings = {
  server: { command: [], python: '', env: {} },
  model: '',
  device: '',
  indexDir: '',
  include: [],
  exclude: [],
  maxFileBytes: null,
  learnFromPicks: null,
  train: { schedule: '', onCpu: null, minNewChunks: null, adapter: null },
  search: { limit: 20, mode: 'hybrid', debounceMs: 150 },
};

/** The server's settings in the camelCase shape it accepts in `initializationOptions`. */
export interface InitializationOptions {
  model?: string;
  device?: string;
  indexDir?: string;
  include?: string[];
  exclude?: string[];
  maxFileBytes?: number;
  learnFromPicks?: boolean;
  train?: { schedule?: string; onCpu?: boolean; minNewChunks?: number; adapter?: boolean };
}

export interface Place {
  /** The workspace folder's path on disk. */
  folder: string;
  /** The user's home directory, for a leading `~`. */
  home: string;
}

/** Expand `${workspaceFolder}`, `${userHome}` and a leading `~`. */
export function expandVars(value: string, place: Place): string {
  let out = value
    .replace(/\$\{workspaceFolder\}/g, place.folder)
    .replace(/\$\{userHome\}/g, place.home);
  if (out === '~' || out.startsWith('~/')) {
    out = place.home + out.slice(1);
  }
  return out;
}

/**
 * `initializationOptions` for one workspace folder.
 *
 * Only settings the user gave are sent: an option sent here outranks
 * `KENNING_*` variables and the workspace's `kenning.toml`, so sending the
 * defaults would silently override a project's own configuration. Values are
 * sent as they are (the server validates them and names a bad field once).
 */
export function initializationOptions(settings: KenningSettings, place: Place): InitializationOptions {
  const out: InitializationOptions = {};
  const text = (v: string | undefined) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
  const model = text(settings.model);
  if (model !== undefined) out.model = expandVars(model, place);
  const device = text(settings.device);
  if (device !== undefined) out.device = device;
  const indexDir = text(settings.indexDir);
  if (indexDir !== undefined) out.indexDir = expandVars(indexDir, place);
  if (Array.isArray(settings.include) && settings.include.length > 0) out.include = [...settings.include];
  if (Array.isArray(settings.exclude) && settings.exclude.length > 0) out.exclude = [...settings.exclude];
  if (typeof settings.maxFileBytes === 'number') out.maxFileBytes = settings.maxFileBytes;
  if (typeof settings.learnFromPicks === 'boolean') out.learnFromPicks = settings.learnFromPicks;
  const train: NonNullable<InitializationOptions['train']> = {};
  const schedule = text(settings.train?.schedule);
  if (schedule !== undefined) train.schedule = schedule;
  if (typeof settings.train?.onCpu === 'boolean') train.onCpu = settings.train.onCpu;
  if (typeof settings.train?.minNewChunks === 'number') train.minNewChunks = settings.train.minNewChunks;
  if (typeof settings.train?.adapter === 'boolean') train.adapter = settings.train.adapter;
  if (Object.keys(train).length > 0) out.train = train;
  return out;
}

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the command came from, for the log and for error messages. */
  source: 'kenning.server.command' | 'kenning.server.python' | 'workspace .venv' | 'PATH';
  env: Record<string, string>;
}

export interface CommandProblem {
  /** What is wrong, in one sentence. */
  message: string;
  /** What to do about it. */
  fix: string;
}

export interface Lookup {
  /** Whether an executable file exists at this absolute path. */
  isExecutable(file: string): boolean;
  /** The absolute path of `name` on the PATH, if any. */
  which(name: string): string | undefined;
  platform: NodeJS.Platform;
}

const INSTALL_FIX =
  'Install Kenning into a Python environment (`pip install -e .` in a Kenning checkout), then set ' +
  '`kenning.server.command` to its executable, e.g. ["/path/to/.venv/bin/kenning", "serve"], ' +
  'or `kenning.server.python` to that environment\'s python.';

/**
 * The command that starts `kenning serve` for one folder, or why there is none.
 *
 * In order: `kenning.server.command` (a single program gets `serve` appended),
 * `kenning.server.python` (`python -m kenning.server.cli serve`), the folder's own
 * `.venv`, then `kenning` on the PATH. `--stdio` is not added: stdio is the
 * server's default, and the extension spawns the process itself.
 */
export function resolveServerCommand(
  settings: KenningSettings,
  place: Place,
  lookup: Lookup,
): ServerCommand | CommandProblem {
  const env = { ...(settings.server?.env ?? {}) };
  const find = (program: string): string | undefined => {
    if (program.includes('/') || program.includes('\\')) {
      const abs = path.resolve(place.folder, program);
      return lookup.isExecutable(abs) ? abs : undefined;
    }
    return lookup.which(program);
  };

  const command = (settings.server?.command ?? []).filter((part) => typeof part === 'string' && part !== '');
  if (command.length > 0) {
    const [program, ...rest] = command.map((part) => expandVars(part, place));
    const found = find(program);
    if (found === undefined) {
      return {
        message: `Kenning: the server command \`${program}\` from \`kenning.server.command\` was not found.`,
        fix: 'Set `kenning.server.command` to the kenning executable, e.g. ["/path/to/.venv/bin/kenning", "serve"].',
      };
    }
    return { command: found, args: rest.length > 0 ? rest : ['serve'], source: 'kenning.server.command', env };
  }

  const python = (settings.server?.python ?? '').trim();
  if (python !== '') {
    const program = expandVars(python, place);
    const found = find(program);
    if (found === undefined) {
      return {
        message: `Kenning: the Python interpreter \`${program}\` from \`kenning.server.python\` was not found.`,
        fix: 'Set `kenning.server.python` to a python that has Kenning installed, or clear it.',
      };
    }
    return { command: found, args: ['-m', 'kenning.server.cli', 'serve'], source: 'kenning.server.python', env };
  }

  const venv =
    lookup.platform === 'win32'
      ? path.join(place.folder, '.venv', 'Scripts', 'kenning.exe')
      : path.join(place.folder, '.venv', 'bin', 'kenning');
  if (lookup.isExecutable(venv)) {
    return { command: venv, args: ['serve'], source: 'workspace .venv', env };
  }
  const onPath = lookup.which('kenning');
  if (onPath !== undefined) {
    return { command: onPath, args: ['serve'], source: 'PATH', env };
  }
  return { message: 'Kenning: the `kenning` server was not found.', fix: INSTALL_FIX };
}

export function isProblem(value: ServerCommand | CommandProblem): value is CommandProblem {
  return (value as CommandProblem).fix !== undefined;
}

/**
 * One sentence about a server that stopped while starting, from its exit code
 * and the last lines it wrote to stderr, with the fix when it is a known one.
 */
export function explainStartFailure(
  command: ServerCommand,
  exit: { code: number | null; signal: string | null },
  stderrTail: string[],
): CommandProblem {
  const lines = stderrTail.map((l) => l.trim()).filter((l) => l !== '');
  const last = [...lines].reverse().find((l) => !/^(Traceback|File |\s*\^)/.test(l)) ?? '';
  const how = exit.signal ? `was killed (${exit.signal})` : `exited with code ${exit.code ?? '?'}`;
  const said = last ? `: ${last.replace(/^kenning: (ERROR )?/, '')}` : '';
  const message = `Kenning: the server ${how} while starting${said}`;
  const text = lines.join('\n');
  if (/No module named ['"]?(kenning|pygls|lsprotocol|torch|sentence_transformers)/.test(text)) {
    return {
      message,
      fix:
        command.source === 'kenning.server.python'
          ? `The Python \`${command.command}\` does not have Kenning installed: run \`${command.command} -m pip install -e .\` in a Kenning checkout, or point \`kenning.server.command\` at a kenning executable.`
          : `Kenning's environment is incomplete: reinstall it (\`pip install -e .\` in a Kenning checkout).`,
    };
  }
  if (/invalid choice: 'serve'|unrecognized arguments/.test(text)) {
    return { message, fix: 'This kenning is too old to serve LSP: update it, or check `kenning.server.command`.' };
  }
  return { message, fix: 'The "Kenning" output has the server log; check `kenning.server.command` and the settings.' };
}
