"""Find similar code from the command line (`kenning related FILE:LINE`), on the
fixture repository with the real bundled model: the stored vector of the chunk at
that line is the query, the chunk itself is left out, and every place where no
answer is possible says why in one line."""

from __future__ import annotations

import json

from kenning.server.cli import main
from kenning.server.related import pick_chunk
from kenning.server.store import ChunkVectorKey, StoredChunk


def related(capsys, workspace, location: str, *extra: str) -> tuple[int, str, str]:
    code = main(["related", location, "--workspace", str(workspace), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_related_code_comes_from_the_chunk_at_the_line_and_leaves_it_out(capsys, core_workspace):
    code, out, _ = related(capsys, core_workspace, "app/uploads.py:20", "--json")

    assert code == 0
    answer = json.loads(out)
    source = answer["source"]
    assert (source["path"], source["symbol"]) == ("app/uploads.py", "upload_with_retry")
    assert (source["start_line"], source["end_line"]) == (17, 26)
    places = [(r["path"], r["start_line"]) for r in answer["results"]]
    assert ("app/uploads.py", 17) not in places
    assert ("app/uploads.py", 11) in places  # backoff_delays, its helper, is close
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True) and all(s < 1.0 for s in scores)
    assert answer["generation"] == 1


def test_related_prints_places_for_people(capsys, core_workspace):
    code, out, _ = related(capsys, core_workspace, str(core_workspace / "app/uploads.py") + ":12")

    assert code == 0
    assert out.splitlines()[0] == "similar to app/uploads.py:11-14  backoff_delays"


def test_where_no_answer_is_possible_one_line_says_why(capsys, core_workspace):
    (core_workspace / "app" / "blob.py").write_bytes(b"\0\1\2 not text")
    main(["index", str(core_workspace)])
    capsys.readouterr()
    cases = {
        "app/uploads.py:99": "line 99 is past the end of app/uploads.py, which has 26 lines",
        "app/blob.py:1": "app/blob.py is a binary file, so it has no code to compare",
        "app/nothing.py:1": "app/nothing.py does not exist in the workspace",
        "generated/out.py:1": "is left out of the index (.gitignore",
        "app/uploads.py": "expected FILE:LINE, e.g. app/uploads.py:17",
        "/etc/hosts:1": "/etc/hosts is not inside the workspace",
    }
    (core_workspace / "generated").mkdir(exist_ok=True)
    (core_workspace / "generated" / "out.py").write_text("def made(): return 1\n")
    for location, says in cases.items():
        code, out, err = related(capsys, core_workspace, location)
        assert code == 2, location
        assert says in err, (location, err)
        assert len(err.strip().splitlines()) == 1


def key(cid: int, start: int, end: int, embeddable: bool = True) -> ChunkVectorKey:
    chunk = StoredChunk(cid, "a.py", start, end, None, "function", "python", "x")
    return ChunkVectorKey(chunk, f"h{cid}", embeddable)


def test_the_narrowest_embedded_chunk_stands_for_a_line():
    header, method, short = key(1, 1, 30), key(2, 10, 20), key(3, 12, 13, embeddable=False)

    assert pick_chunk([header, method, short], 12) is method  # not the unembedded one
    assert pick_chunk([header, method], 5) is header
    assert pick_chunk([method], 40) is method  # past every chunk: the nearest
    assert pick_chunk([short], 12) is None
