"""Nothing leaves the machine: indexing, search and training run with every
network socket refused (issue 9). Unix sockets stay allowed; only IP traffic,
including name lookups, is blocked, and every attempt is recorded."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from kenning.server.cli import main
from kenning.trainer.run import TrainOptions, train_workspace

SHOPCART = Path(__file__).resolve().parent / "data" / "trainer" / "shopcart"


@pytest.fixture
def network_attempts(monkeypatch) -> list[object]:
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network access blocked by the test")
        return real_connect(self, address)

    def lookup(*args: object, **kwargs: object) -> list:
        attempts.append(args[0] if args else kwargs)
        raise socket.gaierror("name lookup blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(
        socket.socket, "connect_ex", lambda self, address: connect(self, address) or 0
    )
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(
        socket,
        "create_connection",
        lambda address, *a, **k: connect(socket.socket(socket.AF_INET), address),
    )
    return attempts


def test_index_search_and_train_never_touch_the_network(
    network_attempts, core_workspace, tmp_path, tiny_model, capsys
):
    # The bundled model, loaded the way users get it.
    assert main(["index", str(core_workspace)]) == 0
    assert (
        main(["search", "retry a failed request", "--workspace", str(core_workspace), "--json"])
        == 0
    )
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["results"]

    shop = tmp_path / "shopcart"
    shutil.copytree(SHOPCART, shop)
    result = train_workspace(
        shop,
        {"index_dir": str(tmp_path / "train-index"), "model": str(tiny_model), "device": "cpu"},
        TrainOptions(batch_size=8, max_pairs=24, min_steps=4, max_seq_length=32, save_steps=100),
    )
    assert result.status in ("promoted", "rejected"), result.reason

    assert network_attempts == []


def test_the_blocker_really_blocks(network_attempts):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    assert network_attempts
