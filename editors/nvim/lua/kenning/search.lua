--- `kenning/search` and the three ways to show its results: the quickfix list
--- (default), `vim.ui.select`, or a Telescope picker (when Telescope is installed).
--- Opening a result from any of them sends `kenning/feedback` (a pick: the server
--- learns which result a query meant).

local kenning = require("kenning")

local M = {}

--- The first non-blank line of a snippet, trimmed.
local function first_line(snippet)
  for line in (snippet or ""):gmatch("[^\r\n]+") do
    local trimmed = vim.trim(line)
    if trimmed ~= "" then
      return trimmed
    end
  end
  return ""
end

--- Quickfix items ({filename, lnum, col, end_lnum, text, user_data}) from a search answer.
--- Ranges are LSP's: 0-based lines, end exclusive; quickfix lines are 1-based.
function M.to_items(result)
  local items = {}
  for _, hit in ipairs(result and result.results or {}) do
    local start = hit.range and hit.range.start or { line = 0, character = 0 }
    local stop = hit.range and hit.range["end"] or start
    local end_lnum = stop.character == 0 and stop.line or stop.line + 1
    local line = first_line(hit.snippet)
    local text = hit.symbol and hit.symbol ~= "" and (hit.symbol .. " — " .. line) or line
    table.insert(items, {
      filename = vim.uri_to_fname(hit.uri),
      lnum = start.line + 1,
      col = (start.character or 0) + 1,
      end_lnum = math.max(end_lnum, start.line + 1),
      text = text,
      user_data = {
        score = hit.score,
        language = hit.language,
        snippet = hit.snippet,
        symbol = hit.symbol,
        range = hit.range,
      },
    })
  end
  return items
end

--- Tell the server that the result `item` (from `to_items`) was opened for `query`.
--- A notification: nothing comes back, and a server that is gone is no error here.
function M.feedback(query, item)
  local data = type(item.user_data) == "table" and item.user_data or {}
  local filename = item.filename or (item.bufnr and vim.api.nvim_buf_get_name(item.bufnr))
  if not query or vim.trim(query) == "" or not data.range or not filename or filename == "" then
    return false
  end
  local client = kenning.get_client(item.bufnr or vim.fn.bufnr(filename))
  if not client then
    return false
  end
  return kenning.notify_server(client, "kenning/feedback", {
    query = query,
    uri = vim.uri_from_fname(filename),
    range = data.range,
  })
end

--- In a quickfix window, <CR> on a Kenning result also sends the pick, then does what
--- <CR> always does there. Other lists are left alone.
function M.attach_quickfix(bufnr)
  vim.keymap.set("n", "<CR>", function()
    local info = vim.fn.getqflist({ context = 0, items = 0 })
    local ctx = type(info.context) == "table" and info.context.kenning or nil
    local is_loclist = vim.fn.getwininfo(vim.api.nvim_get_current_win())[1].loclist == 1
    local item = info.items[vim.fn.line(".")]
    if ctx and item and not is_loclist then
      M.feedback(ctx.query, item)
    end
    vim.api.nvim_feedkeys(vim.keycode("<CR>"), "n", false)
  end, { buffer = bufnr, desc = "Kenning: open the result (and tell the server it was picked)" })
end

local function jump(item)
  vim.cmd("normal! m'")
  vim.cmd.edit(vim.fn.fnameescape(item.filename))
  pcall(vim.api.nvim_win_set_cursor, 0, { item.lnum, math.max(item.col - 1, 0) })
  vim.cmd("normal! zz")
end

local function show_quickfix(query, items, result)
  vim.fn.setqflist({}, " ", {
    title = "Kenning: " .. query,
    items = items,
    context = { kenning = { query = query, model = result.model, generation = result.generation } },
  })
  if kenning.config.open_quickfix then
    vim.cmd("botright copen")
  end
end

local function describe(item)
  return ("%s:%d  %s"):format(vim.fn.fnamemodify(item.filename, ":~:."), item.lnum, item.text)
end

local function show_select(query, items)
  vim.ui.select(items, {
    prompt = "Kenning: " .. query,
    kind = "kenning",
    format_item = describe,
  }, function(item)
    if item then
      jump(item)
      M.feedback(query, item)
    end
  end)
end

--- A Telescope picker over the results, with the file previewed at the hit.
function M.telescope(query, items, opts)
  local ok = pcall(require, "telescope")
  if not ok then
    return false
  end
  opts = opts or {}
  local pickers = require("telescope.pickers")
  local finders = require("telescope.finders")
  local conf = require("telescope.config").values
  local actions = require("telescope.actions")
  local action_state = require("telescope.actions.state")
  pickers
    .new(opts, {
      prompt_title = "Kenning: " .. query,
      finder = finders.new_table({
        results = items,
        entry_maker = function(item)
          return {
            value = item,
            display = describe(item),
            ordinal = item.text .. " " .. item.filename,
            filename = item.filename,
            lnum = item.lnum,
            col = item.col,
          }
        end,
      }),
      sorter = conf.generic_sorter(opts),
      previewer = conf.qflist_previewer(opts),
      attach_mappings = function()
        actions.select_default:enhance({
          pre = function()
            local entry = action_state.get_selected_entry()
            if entry then
              M.feedback(query, entry.value)
            end
          end,
        })
        return true
      end,
    })
    :find()
  return true
end

--- Show items with `picker` ("quickfix", "select" or "telescope").
function M.show(query, items, result, picker)
  if picker == "telescope" then
    if M.telescope(query, items) then
      return
    end
    kenning.notify("Telescope is not installed; showing the results in the quickfix list", vim.log.levels.WARN)
    picker = "quickfix"
  end
  if picker == "select" then
    show_select(query, items)
  else
    show_quickfix(query, items, result)
  end
end

--- Search the workspace for `query` and show the results.
--- @param query string|nil what the code does, in words; nil asks with vim.ui.input
--- @param opts table|nil {picker?, limit?, mode?, paths?, on_result?: fun(result, items)}
function M.search(query, opts)
  opts = opts or {}
  if query == nil or vim.trim(query) == "" then
    vim.ui.input({ prompt = "Kenning search: " }, function(input)
      if input and vim.trim(input) ~= "" then
        M.search(input, opts)
      end
    end)
    return
  end
  local params = {
    query = query,
    limit = opts.limit or kenning.config.limit,
    mode = opts.mode or kenning.config.mode,
    paths = opts.paths,
  }
  kenning.call("kenning/search", params, function(result)
    local items = M.to_items(result)
    local notes = result.notes or {}
    if result.partial and #notes == 0 then
      notes = { "the index is still being built: results come from what is indexed so far" }
    end
    if opts.on_result then
      opts.on_result(result, items)
    end
    if #items == 0 then
      local text = ("no results for '%s'"):format(query)
      if #notes > 0 then
        text = text .. ": " .. table.concat(notes, "; ")
      end
      kenning.notify(text, vim.log.levels.WARN)
      return
    end
    if #notes > 0 then
      kenning.notify(table.concat(notes, "; "), vim.log.levels.INFO)
    end
    M.show(query, items, result, opts.picker or kenning.config.picker)
  end)
end

--- Find code similar to the definition under the cursor (`kenning/related`: the index's
--- stored vector of that code is the query) and show it like search results.
--- @param opts table|nil {picker?, limit?, paths?, on_result?: fun(result, items)}
function M.related(opts)
  opts = opts or {}
  local bufnr = vim.api.nvim_get_current_buf()
  if vim.api.nvim_buf_get_name(bufnr) == "" or vim.bo[bufnr].buftype ~= "" then
    kenning.notify("put the cursor in a function or class of a file to find code like it", vim.log.levels.WARN)
    return
  end
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local params = {
    uri = vim.uri_from_bufnr(bufnr),
    -- Only the line matters to the server; 0 avoids converting a byte column to UTF-16.
    position = { line = row - 1, character = 0 },
    limit = opts.limit or kenning.config.limit,
    paths = opts.paths,
  }
  kenning.call("kenning/related", params, function(result)
    local items = M.to_items(result)
    local source = result.source or {}
    local start = source.range and source.range.start and source.range.start.line or (row - 1)
    local file = source.path or vim.fn.fnamemodify(vim.uri_to_fname(params.uri), ":~:.")
    local where = ("%s:%d"):format(file, start + 1)
    local title = "similar to " .. (source.symbol and (source.symbol .. " (" .. where .. ")") or where)
    if opts.on_result then
      opts.on_result(result, items)
    end
    if #items == 0 then
      local notes = result.notes or {}
      kenning.notify(
        ("nothing found %s%s"):format(title, #notes > 0 and (": " .. table.concat(notes, "; ")) or ""),
        vim.log.levels.WARN
      )
      return
    end
    M.show(title, items, result, opts.picker or kenning.config.picker)
  end)
end

return M
