# The fixture workspaces hold real-looking test files (`tests/test_cart.py`) for
# pair mining to find; they are data, not tests of Kenning.
collect_ignore = ["shopcart"]
