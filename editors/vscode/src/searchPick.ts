/**
 * "Kenning: Semantic Search": a QuickPick that searches as the user types,
 * previews the location under the cursor, and opens the picked one at its
 * range. The logic (params, rows, debounce and cancellation) is in core/; this
 * module is the VS Code glue.
 */

import * as vscode from 'vscode';
import type { FolderClient } from './client';
import { LatestOnly } from './core/debounce';
import {
  coveredLines,
  feedbackParams,
  mergeAnswers,
  searchParams,
  type FolderAnswer,
  type MergedAnswer,
  type ResultRow,
} from './core/search';
import type { KenningSettings } from './core/settings';

export interface ResultItem extends vscode.QuickPickItem {
  row?: ResultRow;
}

const PLACEHOLDER = 'Describe the code you are looking for, e.g. "retry failed uploads"';

const highlight = vscode.window.createTextEditorDecorationType({
  isWholeLine: true,
  backgroundColor: new vscode.ThemeColor('editor.rangeHighlightBackground'),
  overviewRulerColor: new vscode.ThemeColor('editor.rangeHighlightBackground'),
  overviewRulerLane: vscode.OverviewRulerLane.Full,
});

/** Open the search box over every running folder client. */
export async function semanticSearch(clients: FolderClient[], settings: KenningSettings['search']): Promise<void> {
  const pick = vscode.window.createQuickPick<ResultItem>();
  pick.title = 'Kenning: Semantic Search';
  pick.placeholder = PLACEHOLDER;
  pick.matchOnDescription = false;
  pick.matchOnDetail = false;
  pick.ignoreFocusOut = false;

  let answeredQuery = '';

  const search = new LatestOnly<MergedAnswer>(
    async (query, token) => {
      const params = searchParams(query, { limit: settings.limit, mode: settings.mode })!;
      const running = clients.filter((c) => c.running);
      if (running.length === 0) {
        throw new Error(clients.length === 0 ? 'Kenning: open a folder to search it.' : notRunning(clients));
      }
      const answers = await Promise.allSettled(running.map(async (c): Promise<FolderAnswer> => ({
        folder: { name: c.name, uri: c.folder.uri.toString() },
        response: await c.search(params, token as vscode.CancellationToken),
      })));
      const ok = answers.filter((a): a is PromiseFulfilledResult<FolderAnswer> => a.status === 'fulfilled').map((a) => a.value);
      if (ok.length === 0) throw (answers[0] as PromiseRejectedResult).reason;
      return mergeAnswers(ok, settings.limit);
    },
    {
      onResult: (query, answer) => {
        answeredQuery = query;
        show(pick, answer);
      },
      onError: (_query, error) => {
        pick.items = [{ label: `$(error) ${messageOf(error)}`, alwaysShow: true }];
      },
      onBusy: (busy) => {
        pick.busy = busy;
      },
    },
    { delayMs: settings.debounceMs, isEmpty: (q) => searchParams(q) === undefined },
  );

  pick.onDidChangeValue((value) => search.update(value));
  followSelection(
    pick,
    () => search.dispose(),
    (row) => {
      // The user chose this result for what they typed: the strongest thing to learn from.
      const params = feedbackParams(answeredQuery, row);
      const client = clients.find((c) => c.folder.uri.toString() === row.folder);
      if (params && client) void client.feedback(params).catch(() => undefined);
    },
  );

  const initial = selectedText();
  pick.show();
  if (initial) {
    pick.value = initial;
    search.now(initial);
  }
}

/**
 * Preview the row under the cursor, open the accepted one at its range, and when
 * the box is dismissed go back to where the user was (closing the previews it opened).
 */
export function followSelection(
  pick: vscode.QuickPick<ResultItem>,
  onHide?: () => void,
  onAccept?: (row: ResultRow) => void,
): void {
  const original = vscode.window.activeTextEditor;
  const originalSelection = original?.selection;
  const openBefore = new Set(
    vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => tabUri(t)).filter((u): u is string => u !== undefined),
  );
  let accepted = false;
  pick.onDidChangeActive(([item]) => {
    if (item?.row) void reveal(item.row, { preview: true });
  });
  pick.onDidAccept(() => {
    const row = pick.selectedItems[0]?.row ?? pick.activeItems[0]?.row;
    if (!row) return;
    accepted = true;
    pick.hide();
    void reveal(row, { preview: false });
    onAccept?.(row);
  });
  pick.onDidHide(() => {
    onHide?.();
    pick.dispose();
    if (!accepted) void restore(original, originalSelection, openBefore);
    else setTimeout(clearHighlight, 1500);
  });
}

export function show(pick: vscode.QuickPick<ResultItem>, answer: MergedAnswer | undefined): void {
  if (answer === undefined) {
    pick.title = 'Kenning: Semantic Search';
    pick.items = [];
    return;
  }
  pick.title = `Kenning: ${answer.summary}`;
  if (answer.rows.length === 0) {
    const notes = answer.notes.length > 0 ? answer.notes : ['nothing matched; try other words'];
    pick.items = notes.map((note) => ({ label: `$(info) ${note}`, alwaysShow: true }));
    return;
  }
  // alwaysShow: the server already ranked these; the box must not filter them by its own fuzzy match.
  pick.items = answer.rows.map((row) => ({
    label: row.label,
    description: row.description,
    detail: row.detail,
    alwaysShow: true,
    row,
  }));
}

/** Show a result: `preview` keeps focus in the box and reuses the preview tab. */
export async function reveal(row: ResultRow, how: { preview: boolean }): Promise<void> {
  const uri = vscode.Uri.parse(row.uri);
  const { first, last } = coveredLines(row.range);
  let editor: vscode.TextEditor;
  try {
    const doc = await vscode.workspace.openTextDocument(uri);
    const line = Math.min(first, Math.max(0, doc.lineCount - 1));
    const column = doc.lineAt(line).firstNonWhitespaceCharacterIndex;
    const at = new vscode.Position(line, column);
    editor = await vscode.window.showTextDocument(doc, {
      preview: how.preview,
      preserveFocus: how.preview,
      selection: new vscode.Range(at, at),
    });
  } catch (error) {
    if (!how.preview) void vscode.window.showErrorMessage(`Kenning: cannot open ${uri.fsPath}: ${messageOf(error)}`);
    return;
  }
  const span = new vscode.Range(first, 0, last, 0);
  editor.setDecorations(highlight, [span]);
  editor.revealRange(span, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

export function clearHighlight(): void {
  for (const editor of vscode.window.visibleTextEditors) editor.setDecorations(highlight, []);
}

/** Cancelled: close the preview tabs the box opened and return to where the user was. */
export async function restore(
  original: vscode.TextEditor | undefined,
  selection: vscode.Selection | undefined,
  openBefore: Set<string>,
): Promise<void> {
  clearHighlight();
  const previews = vscode.window.tabGroups.all
    .flatMap((g) => g.tabs)
    .filter((t) => t.isPreview && !openBefore.has(tabUri(t) ?? ''));
  if (previews.length > 0) await vscode.window.tabGroups.close(previews, true);
  if (original !== undefined && !original.document.isClosed) {
    const editor = await vscode.window.showTextDocument(original.document, { viewColumn: original.viewColumn, preserveFocus: false });
    if (selection) {
      editor.selection = selection;
      editor.revealRange(selection, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    }
  }
}

export function tabUri(tab: vscode.Tab): string | undefined {
  return tab.input instanceof vscode.TabInputText ? tab.input.uri.toString() : undefined;
}

/** A short single-line selection starts the box with that text. */
function selectedText(): string | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty || !editor.selection.isSingleLine) return undefined;
  const text = editor.document.getText(editor.selection).trim();
  return text.length > 0 && text.length <= 200 ? text : undefined;
}

function notRunning(clients: FolderClient[]): string {
  return `Kenning is not running (${clients.map((c) => c.name).join(', ')}): see "Kenning: Show Status".`;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
