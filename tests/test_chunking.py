from pathlib import Path

import pytest
from kenning.server.chunking import MAX_DEF_LINES, chunk_file

CORE = Path(__file__).parent / "data" / "core"


def symbols(rel: str) -> dict[str, tuple[int, int]]:
    chunks = chunk_file(rel, (CORE / rel).read_text())
    return {c.symbol: (c.start_line, c.end_line) for c in chunks if c.symbol}


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("app/uploads.py", {"UploadError", "backoff_delays", "upload_with_retry"}),
        (
            "app/config.py",
            {"load_config", "Settings", "Settings.__init__", "Settings.database_url"},
        ),
        ("web/cart.js", {"cartTotal", "applyDiscount", "Cart", "Cart.constructor", "Cart.add"}),
        ("web/session.ts", {"Session", "isExpired", "SessionStore", "SessionStore.save"}),
        ("native/hash.go", {"Fingerprint", "Ring", "Ring.Pick"}),
        ("native/parse.rs", {"parse_duration", "Tokenizer", "Tokenizer.next_word"}),
        ("native/Matrix.java", {"Matrix", "Matrix.Matrix", "Matrix.multiply"}),
        ("native/ring.c", {"ring", "ring_push"}),
        ("native/lru.cpp", {"cache", "cache.LruCache", "cache.LruCache.get"}),
    ],
)
def test_definitions_are_found_in_every_supported_language(rel, expected):
    assert expected <= set(symbols(rel))


def test_python_function_keeps_its_docstring_and_span():
    chunks = {
        c.symbol: c for c in chunk_file("app/uploads.py", (CORE / "app/uploads.py").read_text())
    }
    retry = chunks["upload_with_retry"]
    assert retry.text.startswith("def upload_with_retry")
    assert "Retry failed uploads" in retry.text
    assert (retry.start_line, retry.end_line) == (17, 26)
    assert retry.kind == "function" and retry.language == "python"


def test_leading_comments_belong_to_the_definition():
    spans = symbols("app/config.py")
    assert spans["load_config"][0] == 7  # the comment line above `def load_config`
    go = symbols("native/hash.go")
    assert go["Fingerprint"][0] == 5


def test_module_level_code_becomes_windows():
    chunks = chunk_file("app/uploads.py", (CORE / "app/uploads.py").read_text())
    windows = [c for c in chunks if c.kind == "window"]
    assert windows and windows[0].start_line == 1 and "Upload files" in windows[0].text


def test_unknown_languages_fall_back_to_overlapping_windows():
    text = "\n".join(f"line {i} of the deployment notes" for i in range(100))
    chunks = chunk_file("docs/notes.txt", text)
    assert [c.kind for c in chunks] == ["window"] * len(chunks)
    assert len(chunks) >= 3
    assert all(
        b.start_line <= a.end_line for a, b in zip(chunks, chunks[1:], strict=False)
    )  # overlap
    assert chunks[-1].end_line == 100


def test_long_definitions_are_split_but_keep_their_name():
    body = "\n".join(f"    total += {i}" for i in range(MAX_DEF_LINES + 50))
    chunks = chunk_file("big.py", f"def accumulate():\n    total = 0\n{body}\n    return total\n")
    assert len(chunks) >= 3
    assert {c.symbol for c in chunks} == {"accumulate"}
    assert chunks[0].start_line == 1 and chunks[-1].end_line == MAX_DEF_LINES + 53


def test_trivial_chunks_are_not_embedded():
    chunks = chunk_file("t.py", "import os\nimport sys\n\n\ndef f():\n    pass\n")
    assert [c.embeddable for c in chunks if c.symbol == "f"] == [False]
    assert not [c for c in chunks if c.kind == "window"]  # an import block is dropped


def test_hash_changes_with_content_and_location_only():
    a = chunk_file("a.py", "def f():\n    return 1\n")[0]
    b = chunk_file("a.py", "\n\ndef f():\n    return 1\n")[0]
    c = chunk_file("a.py", "def f():\n    return 2\n")[0]
    assert a.hash == b.hash  # moved down two lines: same text, same vector
    assert a.hash != c.hash


def test_empty_and_whitespace_files_have_no_chunks():
    assert chunk_file("e.py", "") == []
    assert chunk_file("e.md", "\n \n") == []


def test_broken_syntax_still_chunks():
    chunks = chunk_file(
        "broken.py",
        "def ok():\n    return 1\n\ndef broken(:\n    total_value = = compute_everything(2)\n",
    )
    assert any(c.symbol == "ok" for c in chunks)
    assert max(c.end_line for c in chunks) >= 4
