"""Pair mining on fixture workspaces and on git histories made in the test."""

from __future__ import annotations

from pathlib import Path

from kenning.server.chunking import chunk_file
from kenning.server.discover import FileFilter
from kenning.trainer.pairs import KINDS, Pair, clean_description, dedupe, mine_pairs


def mine(ws: Path, **kwargs):
    return mine_pairs(ws, FileFilter(ws, (), ()), 1 << 20, **kwargs)


def by_anchor(pairs: list[Pair], text: str) -> Pair:
    found = [p for p in pairs if text in p.anchor]
    assert len(found) == 1, [p.anchor for p in found]
    return found[0]


def test_every_kind_is_counted_and_the_fixture_yields_each_description_kind(shopcart):
    mined = mine(shopcart)
    assert set(mined.counts) == set(KINDS)
    assert sum(mined.counts.values()) == len(mined.pairs) >= 100
    for kind in ("docstring", "comment", "module", "signature", "test", "docs"):
        assert mined.counts[kind] > 0, kind
    assert mined.counts["commit"] == 0  # not a git repository
    assert mined.files == 12


def test_docstring_pair_drops_the_docstring_from_the_code(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "Split the amount by integer ratios")
    assert pair.kind == "docstring"
    assert pair.anchor == "Split the amount by integer ratios without losing or inventing a cent."
    assert pair.path == "shopcart/money.py"
    assert pair.positive.startswith("shopcart/money.py Money.allocate\n")
    assert "def allocate(self, ratios: list[int]) -> list[Money]:" in pair.positive
    assert "inventing" not in pair.positive and '"""' not in pair.positive
    assert "shares[i % len(shares)] += unit" in pair.positive


def test_the_source_chunk_is_recorded_so_evaluation_can_leave_it_out(shopcart):
    mined = mine(shopcart)
    hashes = {c.hash for c in mined.chunks}
    pair = by_anchor(mined.pairs, "Give back every unit a cart was holding")
    assert pair.source_hash in hashes


def test_comments_pair_in_python_and_javascript(shopcart):
    pairs = mine(shopcart).pairs
    js = by_anchor(pairs, "Luhn checksum")
    assert js.kind == "comment" and js.path == "web/checkout.js"
    assert js.positive.startswith("web/checkout.js luhnValid\nexport function luhnValid(number) {")
    assert "/**" not in js.positive and "Luhn" not in js.positive
    py = by_anchor(pairs, "Mixing currencies silently")
    assert (
        py.kind == "comment"
        and "def _check_same_currency" in py.positive
        and "#" not in py.positive
    )


def test_a_comment_opening_the_body_stands_in_for_a_missing_docstring(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "Used by the shipping estimate")
    assert pair.kind == "comment"
    assert "def heaviest_lines" in pair.positive and "ranked = sorted(" in pair.positive
    assert "#" not in pair.positive


def test_jsdoc_tags_are_not_part_of_the_query(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "Format a number of cents")
    assert "@param" not in pair.anchor


def test_signature_pairs_point_at_the_body_only(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "def zone_for(country: str) -> int:")
    assert pair.kind == "signature"
    assert "def zone_for" not in pair.positive and "Delivery zone" not in pair.positive
    assert "return _ZONES[country.upper()]" in pair.positive


def test_test_names_point_at_the_code_they_exercise(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "chargeable weight uses volume for big boxes")
    assert pair.kind == "test"
    assert pair.path == "shopcart/shipping.py"
    assert "def chargeable_weight" in pair.positive


def test_readme_sections_point_at_the_one_symbol_they_name(shopcart):
    pairs = mine(shopcart).pairs
    pair = by_anchor(pairs, "Splitting a payment")
    assert pair.kind == "docs" and "def allocate" in pair.positive
    assert not [p for p in pairs if p.kind == "docs" and "Development" in p.anchor]  # names no code


def test_module_docstring_pairs_with_the_modules_first_definitions(shopcart):
    pair = by_anchor(mine(shopcart).pairs, "Sales tax and VAT")
    assert pair.kind == "module" and pair.path == "shopcart/tax.py"
    assert "def tax_rate" in pair.positive


def test_mining_is_deterministic(shopcart):
    assert mine(shopcart).pairs == mine(shopcart).pairs


def test_ignored_files_are_not_mined(shopcart):
    (shopcart / ".gitignore").write_text("web/\n")
    assert not [p for p in mine(shopcart).pairs if p.path.startswith("web/")]


def test_kinds_can_be_chosen(shopcart):
    mined = mine(shopcart, kinds=["docstring"])
    assert {p.kind for p in mined.pairs} == {"docstring"}


def test_shared_anchors_are_dropped_entirely():
    a = Pair("Return the name of the thing.", "x.py f\ndef f(): ...", "docstring", "x.py")
    b = Pair("return the  name of the thing.", "y.py g\ndef g(): ...", "docstring", "y.py")
    c = Pair("Parse the header line.", "z.py h\ndef h(): ...", "docstring", "z.py")
    kept, dropped = dedupe([a, b, c, c])
    assert kept == [c] and dropped == 3


def test_descriptions_keep_the_first_paragraph_and_drop_sections():
    raw = """Load the user's settings from disk.

    Args:
        path: where they are.
    """
    assert clean_description(raw) == "Load the user's settings from disk."
    assert clean_description("Args:\n    x: y") is None
    assert clean_description("noqa: E501") is None
    assert (
        clean_description("Copyright 2020 Foo. Licensed under the MIT License, see LICENSE.")
        is None
    )
    assert clean_description("Too short.") is None
    long = "word " * 200
    assert len(clean_description(long)) <= 400


def test_long_definitions_mine_from_their_first_window_only():
    body = "\n".join(f"    total += compute_step({i})" for i in range(200))
    text = (
        'def crunch(values):\n    """Add up every computed step for the values."""\n'
        f"    total = 0\n{body}\n    return total\n"
    )
    chunks = chunk_file("big.py", text)
    assert len(chunks) > 1
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d, "big.py").write_text(text)
        mined = mine(Path(d))
    docs = [p for p in mined.pairs if p.kind == "docstring"]
    assert len(docs) == 1 and "def crunch(values):" in docs[0].positive


# -- commits ---------------------------------------------------------------------------


def make_history(ws: Path, g) -> None:
    git, commit_all = g.run, g.commit_all
    git(ws, "init", "-q")
    commit_all(ws, "Initial import of the shop library")
    money = ws / "shopcart" / "money.py"
    money.write_text(
        money.read_text().replace(
            '    if match.group("sign"):\n        value = -value\n',
            '    if match.group("sign"):\n        value = -value\n'
            "    if value.as_tuple().exponent < -4:\n"
            '        raise ValueError(f"too many decimal places in {text!r}")\n'
            '    if abs(value) > Decimal("1e12"):\n'
            '        raise ValueError(f"amount out of range: {text!r}")\n',
        )
    )
    commit_all(
        ws,
        "Reject prices with absurd precision or size when parsing\n\n"
        "Spreadsheet exports sometimes carry 10 decimals.\n\nSigned-off-by: A <a@b.c>",
    )
    ship = ws / "shopcart" / "shipping.py"
    ship.write_text(
        ship.read_text()
        + (
            "\n\ndef insurance_fee(declared_value, rate=0.01, minimum=1.5):\n"
            '    """Fee for insuring a parcel against loss."""\n'
            "    fee = declared_value * rate\n"
            "    return max(fee, minimum)\n"
        )
    )
    commit_all(ws, "wip")
    (ws / "notes.lock").write_text("a\nb\nc\n")
    ship.write_text(
        ship.read_text()
        .replace("rate=0.01", "rate=0.015")
        .replace(
            "    return max(fee, minimum)\n",
            "    fee = round(fee, 2)\n    return max(fee, minimum)\n",
        )
    )
    commit_all(ws, "Raise the parcel insurance rate to 1.5 percent and round the fee")


def test_commit_messages_pair_with_the_largest_hunk_they_changed(shopcart, gitrepo):
    make_history(shopcart, gitrepo)
    mined = mine(shopcart)
    commits = [p for p in mined.pairs if p.kind == "commit"]
    anchors = sorted(p.anchor for p in commits)
    assert anchors == [
        "Raise the parcel insurance rate to 1.5 percent and round the fee",
        "Reject prices with absurd precision or size when parsing "
        "Spreadsheet exports sometimes carry 10 decimals.",
    ]
    parse = by_anchor(commits, "Reject prices")
    assert parse.path == "shopcart/money.py"
    assert "too many decimal places" in parse.positive and "amount out of range" in parse.positive
    assert "Signed-off-by" not in parse.anchor
    assert mined.counts["commit"] == 2
    # The initial import (hundreds of lines in many files) and "wip" give no pair.


def test_commit_history_is_bounded_to_recent_commits(shopcart, gitrepo):
    make_history(shopcart, gitrepo)
    commits = [p for p in mine(shopcart, max_commits=1).pairs if p.kind == "commit"]
    assert [p.anchor for p in commits] == [
        "Raise the parcel insurance rate to 1.5 percent and round the fee"
    ]
    assert not [p for p in mine(shopcart, max_commits=0).pairs if p.kind == "commit"]


def test_a_workspace_inside_a_repository_reads_only_its_own_history(shopcart, gitrepo):
    make_history(shopcart, gitrepo)
    sub = shopcart / "web"
    mined = mine(sub)
    assert not [p for p in mined.pairs if p.kind == "commit"]
    assert {p.path for p in mined.pairs} == {"checkout.js"}
