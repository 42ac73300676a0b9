-- setup({ use_lsp_enable = false, picker = "select" }): the vim.lsp.start path
-- (the one Neovim 0.10 takes) and results through vim.ui.select. Runs while the
-- model is still loading, so the search is answered from the lexical index.
-- Writes what happened to $KENNING_TEST_OUT.
local out = { messages = {} }
vim.notify = function(msg, level)
  table.insert(out.messages, { msg = tostring(msg), level = level })
end
vim.ui.select = function(items, opts, on_choice)
  out.select = { prompt = opts.prompt, kind = opts.kind, shown = vim.tbl_map(opts.format_item, items) }
  on_choice(items[1])
end

local function wait(what, cond)
  if not vim.wait(60000, cond, 100) then
    error("timed out waiting for " .. what, 0)
  end
end

local ok, err = xpcall(function()
  local changed = 0
  vim.api.nvim_create_autocmd("User", {
    pattern = "KenningIndexChanged",
    callback = function()
      changed = changed + 1
    end,
  })
  vim.cmd.edit(vim.fn.fnameescape(assert(os.getenv("KENNING_TEST_WS")) .. "/net/backoff.py"))
  wait("the client to attach", function()
    return #vim.lsp.get_clients({ name = "kenning", bufnr = 0 }) > 0
  end)
  local client = vim.lsp.get_clients({ name = "kenning" })[1]
  out.lsp_enabled = vim.lsp.is_enabled ~= nil and vim.lsp.is_enabled("kenning")
  out.init_options = client.config.init_options
  wait("the first kenning/indexChanged", function()
    return changed > 0
  end)
  vim.cmd("Kenning search apply_late_fee")
  wait("vim.ui.select", function()
    return out.select ~= nil
  end)
  vim.wait(200)
  out.jumped_to = { file = vim.api.nvim_buf_get_name(0), cursor = vim.api.nvim_win_get_cursor(0) }
end, debug.traceback)
if not ok then
  out.error = tostring(err)
end
local fh = assert(io.open(assert(os.getenv("KENNING_TEST_OUT")), "w"))
fh:write(vim.json.encode(out))
fh:close()
vim.cmd("qall!")
