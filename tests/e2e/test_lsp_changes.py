"""The index follows the workspace while `kenning serve` runs: files saved in the
editor, and files created, deleted and renamed behind its back (git checkout,
generators), are searchable (or gone) moments later.

One server for the module; each test edits different files of its own copy.
"""

from __future__ import annotations

import textwrap

import pytest
import pytest_asyncio
from kenning_client import Session, copy_workspace, init_options, kenning_server, paths
from lsprotocol import types

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kenning(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("changes")
    workspace = copy_workspace(root / "workspace")
    # Neovim sends its settings as one dict.
    options = init_options("dict", workspace, {"indexDir": str(root / "index")})
    async with kenning_server(
        workspace, root / "index", editor="neovim", options=options
    ) as session:
        await session.settled()
        yield session


def symbols(answer) -> list[str | None]:
    return [getattr(hit, "symbol", None) for hit in answer.results]


async def test_a_saved_file_is_found_by_its_new_code_and_not_its_old(kenning: Session):
    await kenning.save(
        "text/slugify.py",
        textwrap.dedent('''\
        """Text helpers for schedules."""


        def parse_duration(text: str) -> int:
            """Read a human duration such as 1h30m and return it in seconds."""
            hours, _, minutes = text.removesuffix("m").partition("h")
            return int(hours or 0) * 3600 + int(minutes or 0) * 60
        '''),
    )

    async def new_code_found():
        answer = await kenning.search("how many seconds is a duration like 1h30m", limit=3)
        return answer if symbols(answer)[:1] == ["parse_duration"] else None

    answer = await kenning.eventually(new_code_found, what="the saved function to be found")
    assert answer.results[0].path == "text/slugify.py"
    assert answer.results[0].range.start.line == 3
    assert "slugify" not in symbols(await kenning.search("slugify url slug from a title"))


async def test_a_file_created_outside_the_editor_is_indexed(kenning: Session):
    (kenning.workspace / "net" / "dns.py").write_text(
        textwrap.dedent('''\
        def resolve_hostname(name: str, cache: dict[str, str]) -> str:
            """Look up the IP address of a host name, remembering earlier answers."""
            if name not in cache:
                import socket
                cache[name] = socket.gethostbyname(name)
            return cache[name]
        ''')
    )

    async def found():
        answer = await kenning.search("find the ip address for a host name")
        return answer if paths(answer)[:1] == ["net/dns.py"] else None

    await kenning.eventually(found, what="net/dns.py to be indexed")


async def test_a_file_deleted_outside_the_editor_leaves_the_index(kenning: Session):
    (kenning.workspace / "billing" / "discounts.py").unlink()

    async def gone():
        answer = await kenning.search("apply_discount_code coupon", mode="lexical")
        return "billing/discounts.py" not in paths(answer)

    await kenning.eventually(gone, what="billing/discounts.py to leave the index")


async def test_a_renamed_file_is_found_under_its_new_name_only(kenning: Session):
    (kenning.workspace / "storage" / "cache.js").rename(kenning.workspace / "storage" / "lru.js")

    async def moved():
        found = paths(await kenning.search("LRUCache least recently used", mode="lexical"))
        return found if "storage/lru.js" in found and "storage/cache.js" not in found else None

    await kenning.eventually(moved, what="the renamed file to be found under its new name")


async def test_a_renamed_folder_moves_all_of_its_files(kenning: Session):
    (kenning.workspace / "docs").rename(kenning.workspace / "handbook")

    async def moved():
        found = paths(await kenning.search("shop backend invoices discounts", mode="lexical"))
        return found if "handbook/README.md" in found and "docs/README.md" not in found else None

    await kenning.eventually(moved, what="docs/README.md to move to handbook/README.md")


async def test_a_burst_of_writes_to_one_file_is_indexed_once(kenning: Session):
    before = (await kenning.settled()).embedded_since_start
    generated = kenning.workspace / "schema.py"
    for version in range(20):  # a code generator rewriting its output in a hurry
        generated.write_text(
            textwrap.dedent(f'''\
            def schema_version() -> int:
                """The version number of the generated database schema."""
                return {version}
            ''')
        )

    async def final_version_found():
        answer = await kenning.search("schema_version return 19", mode="lexical")
        return answer if answer.results and "return 19" in answer.results[0].snippet else None

    await kenning.eventually(final_version_found, what="the last write to be indexed")
    after = (await kenning.settled()).embedded_since_start
    assert after - before == 1  # one chunk, embedded once, not once per write


async def test_watched_file_notifications_from_the_client_are_honoured(kenning: Session):
    (kenning.workspace / "net" / "ports.py").write_text(
        textwrap.dedent('''\
            def free_port() -> int:
                """Ask the OS for an unused TCP port number."""
                return 0
            ''')
    )
    kenning.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(uri=kenning.uri("net/ports.py"), type=types.FileChangeType.Created)
            ]
        )
    )

    async def found():
        return "net/ports.py" in paths(
            await kenning.search("free_port unused TCP port", mode="lexical")
        )

    await kenning.eventually(found, what="net/ports.py to be indexed")
    status = await kenning.settled()
    assert status.files == 8  # 6, less discounts.py, plus dns.py, schema.py and ports.py
