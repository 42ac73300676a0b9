-- :Kenning {search|related|status|reindex|train} — see :help kenning.
if vim.g.loaded_kenning then
  return
end
vim.g.loaded_kenning = true

vim.api.nvim_create_user_command("Kenning", function(opts)
  require("kenning").command(opts)
end, {
  nargs = "*",
  desc = "Kenning: semantic code search (search, related, status, reindex, train)",
  complete = function(arglead, cmdline)
    return require("kenning").complete(arglead, cmdline)
  end,
})
