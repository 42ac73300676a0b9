-- :Telescope kenning [query=...] — Kenning's search results in a Telescope picker.
return require("telescope").register_extension({
  exports = {
    kenning = function(opts)
      opts = opts or {}
      require("kenning.search").search(opts.query, { picker = "telescope" })
    end,
  },
})
