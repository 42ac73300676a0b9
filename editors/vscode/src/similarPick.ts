/**
 * "Kenning: Find Similar Code": the code most similar to the definition under the
 * cursor (`kenning/related`, answered from the index's stored vector of that code),
 * in a QuickPick that previews and opens results like the search box.
 */

import * as vscode from 'vscode';
import type { FolderClient } from './client';
import { relatedAnswer } from './core/search';
import { followSelection, messageOf, show, type ResultItem } from './searchPick';

/** Find code similar to the definition at the cursor of the active editor. */
export async function findSimilar(clients: FolderClient[], limit: number): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.uri.scheme !== 'file') {
    void vscode.window.showInformationMessage('Kenning: put the cursor in a function or class of a file to find code like it.');
    return;
  }
  const folder = vscode.workspace.getWorkspaceFolder(editor.document.uri);
  const client = clients.find((c) => folder !== undefined && c.folder.uri.toString() === folder.uri.toString());
  if (!client) {
    void vscode.window.showInformationMessage('Kenning: this file is not in a workspace folder Kenning indexes.');
    return;
  }
  const pick = vscode.window.createQuickPick<ResultItem>();
  pick.title = 'Kenning: Find Similar Code';
  pick.placeholder = 'Pick a place to open it';
  pick.busy = true;
  followSelection(pick);
  pick.show();
  const position = editor.selection.active;
  try {
    const response = await client.related({
      uri: editor.document.uri.toString(),
      position: { line: position.line, character: position.character },
      limit,
    });
    const answer = relatedAnswer(response, { name: client.name, uri: client.folder.uri.toString() }, limit);
    show(pick, answer);
    pick.title = `Kenning: ${answer.title} · ${answer.summary}`;
  } catch (error) {
    pick.items = [{ label: `$(error) ${messageOf(error)}`, alwaysShow: true }];
  } finally {
    pick.busy = false;
  }
}
