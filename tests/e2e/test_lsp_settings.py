"""Live settings: `workspace/didChangeConfiguration` applies new settings without a
restart. The server pulls them with `workspace/configuration` where the client can
answer it, else takes the pushed ones. A change that needs a re-index starts one and
says so; an invalid value is one message naming the field, and the old settings stay.
"""

from __future__ import annotations

from typing import Any

from kenning_client import Session, copy_workspace, kenning_server, paths
from lsprotocol import types
from pytest_lsp import client_capabilities


def changed(ls: Session, settings: dict[str, Any] | None = None, pushed: Any = None) -> int:
    """Set the client's `kenning` settings and tell the server; returns how many
    messages the client had before, to wait for the next one."""
    if settings is not None:
        ls.client.set_configuration(settings, section="kenning")
    ls.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=pushed)
    )
    return len(ls.client.messages)


async def next_message(ls: Session, since: int, text: str) -> types.ShowMessageParams:
    def found():
        return next((m for m in ls.client.messages[since:] if text in m.message), None)

    return await ls.eventually(found, what=f"a message saying {text!r}", timeout=120)


async def test_settings_changed_in_the_editor_apply_without_a_restart(tmp_path, tiny_model):
    workspace = copy_workspace(tmp_path / "workspace")
    async with kenning_server(workspace, tmp_path / "index") as ls:
        await ls.settled()

        since = changed(ls, {"exclude": ["billing/"]})
        message = await next_message(ls, since, "exclude changed for workspace")
        assert message.message.endswith("re-indexing the workspace")
        status = await ls.settled()
        assert status.files == 4
        assert not any(p.startswith("billing/") for p in paths(await ls.search("invoice total")))

        since = changed(ls, {"exclude": ["billing/"], "maxFileBytes": "lots"})
        message = await next_message(ls, since, "max_file_bytes")
        assert message.type == types.MessageType.Error
        assert message.message == (
            "Kenning: setting 'max_file_bytes' (client settings) must be a whole number, "
            "got 'lots'; keeping the previous settings"
        )
        assert (await ls.status()).files == 4

        since = changed(ls, {"exclude": ["billing/"], "model": "/nowhere/model"})
        message = await next_message(ls, since, "/nowhere/model")
        assert "model directory /nowhere/model does not exist" in message.message
        assert message.message.endswith("; keeping the previous settings")

        before = await ls.status()
        since = changed(ls, {"exclude": ["billing/"], "model": str(tiny_model)})
        message = await next_message(ls, since, "model changed for workspace")
        assert "re-embedding the index" in message.message

        async def switched():
            s = await ls.status()
            return s if s.model.name == "tiny-bert" and s.generation != before.generation else None

        await ls.eventually(switched, what="the switch to the new model", timeout=180)
        status = await ls.settled()
        assert status.pending == 0 and status.files == 4
        assert "net/retry.py" in paths(await ls.search("retry with backoff", mode="lexical"))


async def test_pushed_settings_apply_when_the_client_cannot_be_asked(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.workspace is not None
    capabilities.workspace.configuration = False
    async with kenning_server(workspace, tmp_path / "index", capabilities=capabilities) as ls:
        await ls.settled()

        since = changed(ls, pushed={"kenning": {"exclude": ["net/", "text/"]}})
        await next_message(ls, since, "exclude changed for workspace")
        status = await ls.settled()
        assert status.files == 4
