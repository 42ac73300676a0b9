--- Kenning for Neovim's built-in LSP client.
---
--- `setup()` registers the `kenning serve` language server for buffers inside a
--- workspace (the nearest folder with `.git` or `kenning.toml`): through
--- `vim.lsp.config` + `vim.lsp.enable` on Neovim 0.11+, through a FileType
--- autocommand + `vim.lsp.start` on 0.10. Options that are not the plugin's own
--- (see `PLUGIN_KEYS`) are sent to the server as `initializationOptions`.
---
--- This module also holds what the other modules share: the client lookup,
--- requests that work on 0.10 (`client.request`) and 0.11 (`client:request`),
--- error messages, and the `:Kenning` command dispatcher.

local M = {}

M.name = "kenning"

--- The plugin's own options; every other key of `setup(opts)` is a server setting.
M.defaults = {
  cmd = { "kenning", "serve" }, -- the server command
  cmd_env = nil, -- extra environment variables for the server
  root_markers = { ".git", "kenning.toml" }, -- a workspace root holds one of these
  filetypes = nil, -- nil: attach to buffers of every filetype
  autostart = true, -- start the server when a buffer in a workspace opens
  use_lsp_enable = nil, -- nil: vim.lsp.config/enable where Neovim has them (0.11+); false: vim.lsp.start
  picker = "quickfix", -- "quickfix", "select" or "telescope"
  limit = 20, -- search results per query
  mode = "hybrid", -- "hybrid", "semantic" or "lexical"
  open_quickfix = true, -- open the quickfix window after a search
  on_attach = nil, -- function(client, bufnr)
  capabilities = nil, -- client capabilities (nil: Neovim's defaults)
  init_options = nil, -- extra initializationOptions, merged over the settings keys
}

-- Listed because a key whose default is nil is not in M.defaults.
local PLUGIN_KEYS = {
  "cmd", "cmd_env", "root_markers", "filetypes", "autostart", "use_lsp_enable", "picker", "limit", "mode",
  "open_quickfix", "on_attach", "capabilities", "init_options",
}

--- Options in use (the defaults until `setup` is called).
M.config = vim.deepcopy(M.defaults)
M.settings = {}
M.did_setup = false

local GROUP = "kenning"

-- -- messages -------------------------------------------------------------------

--- One message to the user, prefixed with "Kenning: " once.
function M.notify(message, level)
  if not message:match("^Kenning") then
    message = "Kenning: " .. message
  end
  vim.notify(message, level or vim.log.levels.INFO, { title = "Kenning" })
end

local FIXES = {
  [-32601] = "this server does not know the request; update Kenning (pip install -U kenning)",
  [-32603] = "the server failed; details in :LspLog",
  [-32800] = nil, -- cancelled: nothing to fix
}

--- One error message for a failed request, saying what to do about it.
--- @param method string the request that failed
--- @param err table|string a JSON-RPC error ({code, message}) or a message
function M.notify_error(method, err)
  local message = type(err) == "table" and (err.message or vim.inspect(err)) or tostring(err)
  message = message:gsub("^Kenning:%s*", "")
  local code = type(err) == "table" and err.code or nil
  local fix = FIXES[code]
  if code == -32602 and method == "kenning/search" then
    fix = "check `limit` and `mode` in require('kenning').setup()"
  elseif code == -32602 and method == "kenning/related" then
    fix = nil -- the server's message says what to change (a line past the end, a binary file)
  elseif code == -32803 then -- RequestFailed: the server cannot answer now
    fix = "see :checkhealth kenning"
  end
  if code == nil and not message:find(":LspLog", 1, true) then
    fix = "the connection to the server failed; details in :LspLog"
  end
  local text = ("%s failed: %s"):format(method, message)
  if fix then
    text = text .. " (" .. fix .. ")"
  end
  M.notify(text, vim.log.levels.ERROR)
end

-- -- workspace roots and the LSP config ----------------------------------------------

--- The workspace root of `bufnr`, or nil when the buffer is not a file inside one.
function M.find_root(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or name:match("^%a[%w+.-]*://") then -- fugitive://, oil://, ...
    return nil
  end
  return vim.fs.root(name, M.config.root_markers)
end

--- The server settings sent as `initializationOptions`.
function M.init_options()
  return vim.tbl_deep_extend("force", vim.empty_dict(), M.settings, M.config.init_options or {})
end

local function on_index_changed(_, result, ctx)
  local data = vim.tbl_extend("force", { client_id = ctx.client_id }, result or {})
  M.index_state[ctx.client_id] = data
  vim.api.nvim_exec_autocmds("User", { pattern = "KenningIndexChanged", modeline = false, data = data })
end

--- Latest `kenning/indexChanged` params per client id ({generation, files, chunks, partial}).
M.index_state = {}

--- The config handed to `vim.lsp.config` / `vim.lsp.start` (without `root_dir`).
function M.lsp_config()
  local c = M.config
  return {
    name = M.name,
    cmd = c.cmd,
    cmd_env = c.cmd_env,
    filetypes = c.filetypes,
    init_options = M.init_options(),
    capabilities = c.capabilities,
    on_attach = c.on_attach,
    handlers = { ["kenning/indexChanged"] = on_index_changed },
  }
end

local function use_lsp_enable()
  local native = vim.fn.has("nvim-0.11") == 1 and vim.lsp.config ~= nil and type(vim.lsp.enable) == "function"
  return native and M.config.use_lsp_enable ~= false
end

--- Start (or reuse) the server for `bufnr` with `vim.lsp.start`; returns the client id or nil.
function M.start(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local root = M.find_root(bufnr)
  if not root then
    return nil
  end
  local fts = M.config.filetypes
  if fts and not vim.tbl_contains(fts, vim.bo[bufnr].filetype) then
    return nil
  end
  local config = M.lsp_config()
  config.root_dir = root
  return vim.lsp.start(config, { bufnr = bufnr })
end

local function track_progress()
  vim.api.nvim_create_autocmd("LspProgress", {
    group = GROUP,
    desc = "Kenning: remember indexing progress for the statusline",
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data and ev.data.client_id or -1)
      local value = ev.data and ev.data.params and ev.data.params.value
      if not client or client.name ~= M.name or type(value) ~= "table" then
        return
      end
      if value.kind == "end" then
        M.progress = nil
      else
        local title = value.title or (M.progress and M.progress.title) or "Indexing"
        M.progress = { title = title, message = value.message, percentage = value.percentage }
      end
      vim.cmd("redrawstatus")
    end,
  })
end

--- Register the server. Safe to call more than once (the last call wins).
--- @param opts table|nil plugin options (see `M.defaults`) plus server settings
---   (model, device, index_dir, include, exclude, max_file_bytes, train = {...})
function M.setup(opts)
  if vim.fn.has("nvim-0.10") == 0 then
    M.notify("needs Neovim 0.10 or newer; this is " .. tostring(vim.version()), vim.log.levels.ERROR)
    return
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    M.notify("setup() takes a table of options, got " .. type(opts), vim.log.levels.ERROR)
    return
  end
  M.config = vim.deepcopy(M.defaults)
  M.settings = {}
  for key, value in pairs(opts) do
    if vim.tbl_contains(PLUGIN_KEYS, key) then
      M.config[key] = value
    else
      M.settings[key] = value
    end
  end
  if type(M.config.cmd) == "string" then
    M.config.cmd = { M.config.cmd }
  end
  M.did_setup = true

  vim.api.nvim_create_augroup(GROUP, { clear = true })
  track_progress()
  vim.api.nvim_create_autocmd("FileType", {
    group = GROUP,
    pattern = "qf",
    desc = "Kenning: opening a result from its quickfix list tells the server (a pick)",
    callback = function(ev)
      require("kenning.search").attach_quickfix(ev.buf)
    end,
  })
  if use_lsp_enable() then
    local config = M.lsp_config()
    config.root_dir = function(bufnr, on_dir)
      local root = M.find_root(bufnr)
      if root then
        on_dir(root)
      end
    end
    vim.lsp.config(M.name, config)
    if M.config.autostart then
      vim.lsp.enable(M.name)
    end
  elseif M.config.autostart then
    if vim.lsp.is_enabled and vim.lsp.is_enabled(M.name) then
      vim.lsp.enable(M.name, false) -- an earlier setup() chose vim.lsp.enable
    end
    vim.api.nvim_create_autocmd("FileType", {
      group = GROUP,
      desc = "Kenning: start the language server for files in a workspace",
      callback = function(ev)
        M.start(ev.buf)
      end,
    })
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype ~= "" then
        M.start(bufnr)
      end
    end
  end
end

-- -- clients and requests -----------------------------------------------------------------

--- The Kenning client for `bufnr` (or the only one running), else nil and why.
function M.get_client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = bufnr or 0 })
  if #clients > 0 then
    return clients[1]
  end
  clients = vim.lsp.get_clients({ name = M.name })
  if #clients == 1 then
    return clients[1]
  end
  local cwd = vim.fs.normalize(vim.fn.getcwd())
  for _, client in ipairs(clients) do
    local root = client.config.root_dir and vim.fs.normalize(client.config.root_dir)
    if root and (cwd == root or vim.startswith(cwd, root .. "/")) then
      return client
    end
  end
  if #clients > 1 then
    return clients[1]
  end
  if not M.did_setup then
    return nil, "not set up: call require('kenning').setup() in your config"
  end
  return nil,
    "no server is running for this buffer; open a file inside a workspace (a folder with "
      .. table.concat(M.config.root_markers, " or ")
      .. "), or see :checkhealth kenning"
end

--- `client:request` on 0.11, `client.request` on 0.10.
function M.request(client, method, params, handler, bufnr)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- `client:notify` on 0.11, `client.notify` on 0.10; false when the server has exited.
function M.notify_server(client, method, params)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- `client:request_sync` on 0.11, `client.request_sync` on 0.10: result, or nil and an error.
function M.request_sync(client, method, params, timeout_ms, bufnr)
  local response, err
  if vim.fn.has("nvim-0.11") == 1 then
    response, err = client:request_sync(method, params, timeout_ms, bufnr)
  else
    response, err = client.request_sync(method, params, timeout_ms, bufnr)
  end
  if not response then
    return nil, err or "no answer"
  end
  if response.err then
    return nil, response.err
  end
  return response.result
end

--- Send `method` to the Kenning client of the current buffer; `on_result(result, client)`
--- runs on success, and any failure becomes one message.
function M.call(method, params, on_result)
  local client, why = M.get_client(0)
  if not client then
    M.notify(why, vim.log.levels.WARN)
    return
  end
  local ok = M.request(client, method, params or vim.empty_dict(), function(err, result)
    if err then
      M.notify_error(method, err)
      return
    end
    on_result(result, client)
  end, vim.api.nvim_get_current_buf())
  if not ok then
    M.notify_error(method, "the server has exited; see :LspLog, then reopen the file to restart it")
  end
end

-- -- status, reindex, train -------------------------------------------------------------

local function human_bytes(n)
  n = tonumber(n) or 0
  local units = { "B", "KiB", "MiB", "GiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  return i == 1 and ("%d %s"):format(n, units[i]) or ("%.1f %s"):format(n, units[i])
end

--- The status answer as lines of text.
function M.format_status(s)
  local model = type(s.model) == "table" and s.model or {}
  local lines = {
    ("Kenning %s: %d files, %d chunks%s"):format(
      s.state or "?",
      s.files or 0,
      s.chunks or 0,
      (s.pending or 0) > 0 and (", %d waiting for vectors"):format(s.pending) or ""
    ),
    ("model %s (%s)%s"):format(
      model.name or "?",
      model.version or "base",
      model.trained_at and (", trained " .. model.trained_at) or ""
    ),
  }
  if s.workspace then
    table.insert(lines, "workspace " .. s.workspace)
  end
  if s.index_dir then
    table.insert(lines, ("index %s (%s)"):format(s.index_dir, human_bytes(s.index_bytes)))
  end
  if (s.queued or 0) > 0 then
    table.insert(lines, ("%d changed files queued for re-indexing"):format(s.queued))
  end
  if type(s.last_training) == "table" then
    local t = s.last_training
    local when = type(t.time) == "number" and os.date("%Y-%m-%d %H:%M", math.floor(t.time)) or "?"
    table.insert(lines, ("last training: %s at %s: %s"):format(tostring(t.status), when, tostring(t.reason or "")))
  end
  for _, warning in ipairs(s.warnings or {}) do
    table.insert(lines, "warning: " .. warning)
  end
  return lines
end

function M.status(on_result)
  M.call("kenning/status", vim.empty_dict(), function(result, client)
    if on_result then
      return on_result(result, client)
    end
    M.notify(table.concat(M.format_status(result), "\n"))
  end)
end

--- Re-index `paths` (file names; none means the whole workspace).
function M.reindex(paths, on_result)
  local params = vim.empty_dict()
  if paths and #paths > 0 then
    local files = {}
    for _, p in ipairs(paths) do
      local name = vim.fn.expand(p)
      if name == "" then
        M.notify(("'%s' names no file here; give a file name, or no argument for the whole workspace"):format(p),
          vim.log.levels.ERROR)
        return
      end
      table.insert(files, vim.fn.fnamemodify(name, ":p"))
    end
    params = { paths = files }
  end
  M.call("kenning/reindex", params, function(result, client)
    if on_result then
      return on_result(result, client)
    end
    M.notify(("queued %d file%s for re-indexing"):format(result.queued or 0, result.queued == 1 and "" or "s"))
  end)
end

--- Fine-tune the model on the workspace now (force: skip the schedule's waiting conditions).
function M.train(force, on_result)
  M.call("kenning/train", { force = force ~= false }, function(result, client)
    if on_result then
      return on_result(result, client)
    end
    if result.started then
      M.notify("training started; progress shows in the statusline (vim.lsp.status())")
    else
      M.notify("training did not start: " .. (result.reason or "no reason given"), vim.log.levels.WARN)
    end
  end)
end

--- Indexing progress for a statusline: "" when idle, else e.g. "Kenning: Indexing 40%".
--- Use it as `%{v:lua.require'kenning'.statusline()}` or as a lualine component.
function M.statusline()
  local p = M.progress
  if not p then
    return ""
  end
  local text = p.title:match("^Kenning") and p.title or ("Kenning: " .. p.title)
  if p.percentage then
    text = text .. (" %d%%"):format(p.percentage)
  end
  return text
end

-- -- the :Kenning command --------------------------------------------------------------

M.subcommands = {
  search = function(args)
    require("kenning.search").search(args ~= "" and args or nil)
  end,
  related = function()
    require("kenning.search").related()
  end,
  status = function()
    M.status()
  end,
  reindex = function(args)
    M.reindex(args ~= "" and vim.split(args, "%s+", { trimempty = true }) or nil)
  end,
  train = function()
    M.train(true)
  end,
}

--- Run `:Kenning {subcommand} {args}`.
function M.command(opts)
  local sub, args = (opts.args or ""):match("^%s*(%S*)%s*(.-)%s*$")
  if sub == "" then
    sub = "search"
  end
  local run = M.subcommands[sub]
  if not run then
    M.notify(
      ("unknown subcommand '%s'; use one of: %s"):format(sub, table.concat(vim.tbl_keys(M.subcommands), ", ")),
      vim.log.levels.ERROR
    )
    return
  end
  run(args)
end

--- Completion for `:Kenning`: subcommands, then file names for `reindex`.
function M.complete(arglead, cmdline)
  local rest = cmdline:gsub("^%s*%S+%s*", "")
  local words = vim.split(rest, "%s+", { trimempty = false })
  if #words <= 1 then
    local names = vim.tbl_keys(M.subcommands)
    table.sort(names)
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, names)
  end
  if words[1] == "reindex" then
    return vim.fn.getcompletion(arglead, "file")
  end
  return {}
end

return M
