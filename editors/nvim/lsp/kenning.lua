-- Neovim 0.11+: `vim.lsp.enable("kenning")` works with this default config even
-- without setup(); setup() overrides it with your options.
local kenning = require("kenning")
local config = kenning.lsp_config()
config.root_dir = function(bufnr, on_dir)
  local root = kenning.find_root(bufnr)
  if root then
    on_dir(root)
  end
end
return config
