"""`kenning index --ray` on a real local Ray runtime (two CPUs, loopback), with
the tiny test model: the vectors Ray's replicas write equal the ones a single
process writes, a rerun embeds nothing, and a replica killed mid-run loses
nothing that a retry or a rerun does not finish.

Skipped when Ray Data is not installed (`pip install 'kenning[ray]'`; the
README's test command installs it)."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from kenning.server.cli import main
from kenning.server.engine import Engine

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'kenning[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'kenning[ray]'")


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime for the module: starting one costs ~10 s here."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def index_cli(capsys, workspace: Path, index_dir: Path, model: Path, *extra: str) -> dict:
    argv = ["index", str(workspace), "--json", "--model", str(model), "--index-dir", str(index_dir)]
    code = main([*argv, *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def stored_vectors(workspace: Path, index_dir: Path, model: Path) -> dict[str, np.ndarray]:
    # The workspace the index was built for: an index folder holds one workspace's index.
    with Engine.open(workspace, {"index_dir": str(index_dir), "model": str(model)}) as e:
        gen = e.serving_generation()
        assert gen is not None and e.store.consistency_problems() == []
        rows = e.store.conn.execute("SELECT hash, vec FROM embeddings WHERE gen = ?", (gen.id,))
        return {h: np.frombuffer(v, dtype=np.float16).astype(np.float32) for h, v in rows}


def assert_same_vectors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys() and a
    for h, va in a.items():
        vb = b[h]
        cosine = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
        assert cosine >= 0.9999, h


def test_ray_writes_the_vectors_one_process_writes_and_a_rerun_embeds_nothing(
    capsys, core_workspace, tiny_model, tmp_path, ray_runtime
):
    alone = index_cli(capsys, core_workspace, tmp_path / "alone", tiny_model)
    on_ray = index_cli(capsys, core_workspace, tmp_path / "ray", tiny_model, "--ray")
    assert on_ray["embedded"] == alone["embedded"] > 0
    assert on_ray["chunks"] == alone["chunks"]
    assert_same_vectors(
        stored_vectors(core_workspace, tmp_path / "alone", tiny_model),
        stored_vectors(core_workspace, tmp_path / "ray", tiny_model),
    )
    again = index_cli(capsys, core_workspace, tmp_path / "ray", tiny_model, "--ray")
    assert again["embedded"] == 0 and again["changed_files"] == 0


def many_functions(root: Path, files: int = 40, per_file: int = 6) -> Path:
    root.mkdir()
    for f in range(files):
        body = "\n".join(
            textwrap.dedent(f'''
            def rule_{f}_{n}(order):
                """Rule {n} of table {f}: orders over {f * 7 + n} get {n % 9} percent off."""
                return order.total * {(n % 9) / 100!r} if order.total > {f * 7 + n} else 0
            ''')
            for n in range(per_file)
        )
        (root / f"rules_{f}.py").write_text(body)
    return root


def replica_pids() -> list[int]:
    """This test's own replicas: the local runtime's processes descend from this
    one, so a Ray run of someone else's on the same machine is never touched."""
    import psutil

    pids = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("EmbedReplica" in part for part in p.cmdline()):
                pids.append(p.pid)
        except psutil.Error:  # ended or not ours to read: not a replica to kill
            continue
    return pids


def test_a_replica_killed_mid_run_is_retried_or_the_rerun_completes(
    tiny_model, tmp_path, ray_runtime
):
    from kenning.server.ray_embed import RayOptions

    workspace = many_functions(tmp_path / "ws")
    overrides = {"index_dir": str(tmp_path / "index"), "model": str(tiny_model)}
    killed: list[int] = []
    lock = threading.Lock()

    def kill_a_replica(phase: str, done: int, total: int) -> None:
        # After the first batch is stored, while the rest are in flight.
        with lock:
            if phase == "embed" and done and not killed:
                pids = replica_pids()
                assert pids, "no Ray replica process found"
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    options = RayOptions(replicas=2, batch_size=8)
    with Engine.open(workspace, overrides) as engine:
        try:
            first = engine.index(progress=kill_a_replica, ray=options).embedded
        except Exception:  # noqa: BLE001 - Ray gave up on the batch: the rerun must finish
            first = None
        assert killed
        stored = engine.store.generation_counts(engine.target_generation().id)
        assert stored > 0  # the batches written before the kill stay
        rerun = engine.index(ray=options).embedded
        print(
            f"replica {killed[0]} killed; Ray retried: {first is not None}; rerun embedded {rerun}"
        )
        total = engine.store.embeddable_texts()
        if first is not None:
            assert first == total and rerun == 0  # Ray retried the lost batch itself
        else:
            assert stored + rerun == total  # the rerun embedded only what was missing
        gen = engine.serving_generation()
        assert gen is not None and engine.store.generation_counts(gen.id) == total
        assert engine.store.counts(gen.id).pending == 0
        assert engine.store.consistency_problems() == []


def test_without_ray_installed_the_flag_says_how_to_get_it(capsys, core_workspace, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = main(["index", str(core_workspace), "--ray"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]  # one line
    assert "pip install 'kenning[ray]'" in err


def test_ray_refuses_an_index_a_running_server_keeps(capsys, core_workspace, tiny_model, tmp_path):
    from kenning.server.writer_lock import WriterLock

    index_dir = tmp_path / "index"
    index_dir.mkdir()
    server = WriterLock(index_dir)
    assert server.try_acquire("server", str(core_workspace))
    try:
        argv = ["index", str(core_workspace), "--ray", "--index-dir", str(index_dir)]
        code = main([*argv, "--model", str(tiny_model)])
    finally:
        server.release()
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.splitlines() == [err]
    assert "running server keeps this index" in err and "kenning stop" in err
