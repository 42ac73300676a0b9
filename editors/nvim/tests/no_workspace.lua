-- A file outside any workspace: no server starts and :Kenning says what to do.
-- Writes {clients, messages, completion} to $KENNING_TEST_OUT.
local out = { messages = {} }
vim.notify = function(msg, level)
  table.insert(out.messages, { msg = tostring(msg), level = level })
end

local ok, err = pcall(function()
  vim.cmd.edit(vim.fn.fnameescape(assert(os.getenv("KENNING_TEST_FILE"))))
  vim.wait(1000) -- time for a (wrong) client to start
  out.clients = #vim.lsp.get_clients({ name = "kenning" })
  vim.cmd("Kenning search retry failed uploads")
  out.completion = vim.fn.getcompletion("Kenning ", "cmdline")
end)
if not ok then
  out.error = tostring(err)
end
local fh = assert(io.open(assert(os.getenv("KENNING_TEST_OUT")), "w"))
fh:write(vim.json.encode(out))
fh:close()
vim.cmd("qall!")
