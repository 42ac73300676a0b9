-- Drives the plugin against a real `kenning serve` in a headless Neovim and
-- writes what happened to $KENNING_TEST_OUT as JSON; tests/editors/test_nvim.py
-- asserts on it. One Neovim session runs every step, so the model loads once.
--
-- Environment: KENNING_TEST_WS (workspace), KENNING_TEST_OUT (result file),
-- KENNING_TEST_QUERY (first search), KENNING_TEST_TIMEOUT_MS (per wait).

local kenning = require("kenning")

local ws = assert(os.getenv("KENNING_TEST_WS"), "KENNING_TEST_WS is not set")
local out_path = assert(os.getenv("KENNING_TEST_OUT"), "KENNING_TEST_OUT is not set")
local query = os.getenv("KENNING_TEST_QUERY") or "charge a penalty when an order is paid late"
local timeout = tonumber(os.getenv("KENNING_TEST_TIMEOUT_MS") or "") or 120000

local out = { steps = {}, errors = {}, messages = {}, progress = {}, index_changed = 0 }
local t0 = vim.uv.hrtime()

local function elapsed()
  return math.floor((vim.uv.hrtime() - t0) / 1e6)
end

local function write_out()
  out.elapsed_ms = elapsed()
  local fh = assert(io.open(out_path, "w"))
  fh:write(vim.json.encode(out))
  fh:close()
end

-- Everything the plugin tells the user.
vim.notify = function(msg, level)
  table.insert(out.messages, { msg = tostring(msg), level = level or vim.log.levels.INFO, at = elapsed() })
end

vim.api.nvim_create_autocmd("LspProgress", {
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    local value = ev.data.params.value or {}
    if client and client.name == "kenning" then
      table.insert(out.progress, {
        kind = value.kind,
        title = value.title,
        percentage = value.percentage,
        statusline = kenning.statusline(),
        lsp_status = vim.lsp.status and vim.lsp.status() or nil,
      })
    end
  end,
})

vim.api.nvim_create_autocmd("User", {
  pattern = "KenningIndexChanged",
  callback = function()
    out.index_changed = out.index_changed + 1
  end,
})

local function wait(what, cond, ms, interval)
  if not vim.wait(ms or timeout, cond, interval or 100) then
    error(("timed out after %d ms waiting for %s"):format(ms or timeout, what), 0)
  end
end

local function client()
  return vim.lsp.get_clients({ name = "kenning" })[1]
end

local function status()
  local result, err = kenning.request_sync(client(), "kenning/status", vim.empty_dict(), 10000)
  if not result then
    error("kenning/status failed: " .. vim.inspect(err), 0)
  end
  return result
end

local function wait_until_indexed(what)
  local last
  wait(what, function()
    last = status()
    return last.state == "idle" and last.pending == 0 and (last.queued or 0) == 0 and last.files > 0
  end, timeout, 500)
  return last
end

local function messages_since(n)
  return vim.list_slice(out.messages, n + 1)
end

local function wait_message(what, since, pattern)
  local found
  wait(what, function()
    for _, m in ipairs(messages_since(since)) do
      if m.msg:find(pattern) then
        found = m
        return true
      end
    end
    return false
  end, 30000)
  return found
end

--- Run an Ex command that fills the quickfix list and wait for the list (or a message).
local function quickfix_of(command)
  local before = vim.fn.getqflist({ id = 0, changedtick = 0 })
  local n = #out.messages
  vim.cmd(command)
  wait("the results of '" .. command .. "'", function()
    local now = vim.fn.getqflist({ id = 0, changedtick = 0 })
    if now.id ~= before.id or now.changedtick ~= before.changedtick then
      return true
    end
    for _, m in ipairs(messages_since(n)) do
      if m.level >= vim.log.levels.WARN then
        return true
      end
    end
    return false
  end, 30000)
  -- :Kenning search opens the quickfix window; go back to the file.
  vim.cmd("cclose")
  local info = vim.fn.getqflist({ title = 0, items = 0, context = 0 })
  local items = {}
  for _, item in ipairs(info.items) do
    table.insert(items, {
      filename = vim.api.nvim_buf_get_name(item.bufnr),
      lnum = item.lnum,
      col = item.col,
      text = item.text,
    })
  end
  return { title = info.title, items = items, messages = messages_since(n) }
end

--- Run `:Kenning search {q}` and wait for the quickfix list it makes (or a message).
local function search(q)
  return quickfix_of("Kenning search " .. q)
end

local function step(name, fn)
  local start = elapsed()
  local ok, err = xpcall(fn, debug.traceback)
  out.steps[name] = ok
  out.step_ms = out.step_ms or {}
  out.step_ms[name] = elapsed() - start
  if not ok then
    out.errors[name] = tostring(err)
  end
  return ok
end

local steps = {
  { "attach", function()
    vim.cmd.edit(vim.fn.fnameescape(ws .. "/shop/orders.py"))
    wait("the client to attach", function()
      local c = client()
      return c ~= nil and c.initialized and #vim.lsp.get_clients({ name = "kenning", bufnr = 0 }) > 0
    end, 60000)
    out.root_dir = client().config.root_dir
    out.init_options = client().config.init_options
    out.has_command = vim.fn.exists(":Kenning") == 2
  end },
  { "indexed", function()
    out.status = wait_until_indexed("the first index")
  end },
  { "search", function()
    out.search = search(query)
  end },
  { "pick_from_quickfix", function()
    local before = status().picks or 0
    vim.cmd("copen")
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    vim.api.nvim_feedkeys(vim.keycode("<CR>"), "mx", false)
    out.quickfix_pick = { filename = vim.api.nvim_buf_get_name(0), lnum = vim.api.nvim_win_get_cursor(0)[1] }
    wait("the quickfix pick to be kept", function()
      return (status().picks or 0) > before
    end, 30000)
    out.picks_after_quickfix = status().picks
    vim.cmd("cclose")
  end },
  { "pick_from_select", function()
    local before = status().picks or 0
    local original = vim.ui.select
    vim.ui.select = function(items, _, on_choice)
      on_choice(items[1], 1)
    end
    require("kenning.search").search(query, { picker = "select" })
    wait("the vim.ui.select pick to be kept", function()
      return (status().picks or 0) > before
    end, 30000)
    vim.ui.select = original
    out.picks_after_select = status().picks
    out.select_pick = { filename = vim.api.nvim_buf_get_name(0) }
  end },
  { "related_command", function()
    vim.cmd.edit(vim.fn.fnameescape(ws .. "/shop/orders.py"))
    local line = vim.fn.search("return round(order.total_cents", "nw")
    vim.api.nvim_win_set_cursor(0, { line, 4 })
    out.related = quickfix_of("Kenning related")
  end },
  { "status_command", function()
    local n = #out.messages
    vim.cmd("Kenning status")
    out.status_message = wait_message(":Kenning status", n, "files")
  end },
  { "reindex_command", function()
    local n = #out.messages
    vim.cmd("Kenning reindex %")
    out.reindex_message = wait_message(":Kenning reindex", n, "queued")
  end },
  { "saved_edit", function()
    wait_until_indexed("the re-index of the current file")
    local new_code = {
      "",
      "",
      "def celsius_to_fahrenheit(celsius: float) -> float:",
      '    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""',
      "    return celsius * 9 / 5 + 32",
    }
    local last = vim.api.nvim_buf_line_count(0)
    vim.api.nvim_buf_set_lines(0, last, last, false, new_code)
    out.edit = { filename = vim.api.nvim_buf_get_name(0), lnum = last + 3 }
    local changes = out.index_changed
    vim.cmd("write")
    wait("kenning/indexChanged after the save", function()
      return out.index_changed > changes
    end)
    wait_until_indexed("the saved file to be re-indexed")
    out.search_after_edit = search("convert a temperature from celsius to fahrenheit")
  end },
  { "checkhealth", function()
    vim.cmd("checkhealth kenning")
    out.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    pcall(vim.cmd, "tabclose")
  end },
  { "train_command", function()
    local n = #out.messages
    vim.cmd("Kenning train")
    out.train_message = wait_message(":Kenning train", n, "train")
  end },
}

local function main()
  for _, s in ipairs(steps) do
    -- Once the server is not there, later steps only repeat the same failure.
    if not step(s[1], s[2]) and (s[1] == "attach" or s[1] == "indexed") then
      break
    end
  end
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  out.errors.main = tostring(err)
end
write_out()
vim.cmd("qall!")
