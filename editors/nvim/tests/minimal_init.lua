-- Minimal config for the headless tests: this plugin only, the server command
-- from $KENNING_TEST_CMD (a JSON list), more options from $KENNING_TEST_OPTS
-- (a JSON object), nothing from the user's config.
local plugin_root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
vim.opt.runtimepath:prepend(plugin_root)
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"

local opts = vim.json.decode(os.getenv("KENNING_TEST_OPTS") or "{}")
local cmd = os.getenv("KENNING_TEST_CMD")
opts.cmd = cmd and vim.json.decode(cmd) or nil
opts.limit = opts.limit or 10
require("kenning").setup(opts)
