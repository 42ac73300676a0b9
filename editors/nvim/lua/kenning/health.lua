--- :checkhealth kenning — whether the server command runs, and which model each
--- running server uses.

local M = {}

local health = vim.health

local function check_neovim()
  local v = vim.version()
  local text = ("Neovim %d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 0 then
    health.error(text .. " is too old", { "Kenning needs Neovim 0.10 or newer" })
  elseif vim.fn.has("nvim-0.11") == 1 then
    health.ok(text .. " (vim.lsp.config / vim.lsp.enable)")
  else
    health.ok(text .. " (vim.lsp.start)")
  end
end

local function check_command(kenning)
  local cmd = kenning.config.cmd
  if type(cmd) ~= "table" or #cmd == 0 then
    health.info("`cmd` is not a list of strings; not checking it")
    return
  end
  local shown = table.concat(cmd, " ")
  if vim.fn.executable(cmd[1]) == 0 then
    health.error(("`%s` is not an executable on PATH"):format(cmd[1]), {
      "Install the server: pip install kenning",
      'Or point the plugin at it: require("kenning").setup({ cmd = { "/path/to/kenning", "serve" } })',
    })
    return
  end
  local probe = vim.list_extend(vim.deepcopy(cmd), { "--help" })
  local ok, result = pcall(function()
    return vim.system(probe, { text = true, env = kenning.config.cmd_env }):wait(60000)
  end)
  if not ok then
    health.error(("`%s --help` cannot run: %s"):format(shown, result))
  elseif result.code ~= 0 then
    local err = vim.trim(result.stderr or "")
    health.error(("`%s --help` exited with %s"):format(shown, tostring(result.code)), {
      err ~= "" and err:match("[^\n]*$") or "run it in a shell to see why",
    })
  else
    health.ok(("`%s` runs"):format(shown))
  end
end

local function check_clients(kenning)
  local clients = vim.lsp.get_clients({ name = kenning.name })
  if #clients == 0 then
    local model = kenning.settings.model or "the bundled all-MiniLM-L6-v2 (default)"
    health.info(("No Kenning server is running; configured model: %s"):format(model))
    health.info("Open a file inside a workspace (a folder with .git or kenning.toml) to start one")
    return
  end
  for _, client in ipairs(clients) do
    local root = client.config.root_dir or "?"
    local status, err = kenning.request_sync(client, "kenning/status", vim.empty_dict(), 15000)
    if status then
      local model = type(status.model) == "table" and status.model or {}
      health.ok(
        ("Server for %s uses model %s (%s)%s"):format(
          root,
          model.name or "?",
          model.version or "base",
          model.trained_at and (", trained " .. model.trained_at) or ""
        )
      )
      health.info(table.concat(kenning.format_status(status), "\n"))
    else
      local message = type(err) == "table" and (err.message or vim.inspect(err)) or tostring(err)
      health.error(("Server for %s does not answer kenning/status: %s"):format(root, message), {
        "See :LspLog for the server's log",
      })
    end
  end
end

function M.check()
  local kenning = require("kenning")
  health.start("kenning")
  check_neovim()
  if kenning.did_setup then
    health.ok("setup() was called")
  else
    health.warn("setup() has not been called", { 'Add require("kenning").setup() to your config' })
  end
  check_command(kenning)
  check_clients(kenning)
  if pcall(require, "telescope") then
    health.ok("Telescope is installed (picker = \"telescope\" works)")
  else
    health.info("Telescope is not installed (optional; picker = \"telescope\" needs it)")
  end
end

return M
