from pathlib import Path

import pytest
from kenning.server.settings import DEFAULT_MODEL, SettingsError, load_settings


def test_defaults_when_nothing_is_configured(tmp_path):
    s = load_settings(tmp_path, environ={})
    assert s.model == DEFAULT_MODEL
    assert s.device == "auto"
    assert s.max_file_bytes == 1 << 20
    assert (s.train.schedule, s.train.on_cpu, s.train.min_new_chunks) == ("daily", False, 200)


def test_precedence_cli_over_lsp_over_env_over_file(tmp_path: Path):
    (tmp_path / "kenning.toml").write_text(
        'model = "file"\ndevice = "cpu"\nmax_file_bytes = 10\n[train]\nschedule = "hourly"\n'
    )
    env = {"KENNING_MODEL": "env", "KENNING_DEVICE": "cuda", "KENNING_TRAIN__ON_CPU": "true"}
    s = load_settings(tmp_path, environ=env, init_options={"model": "lsp"}, cli={"model": "cli"})
    assert s.model == "cli"
    assert s.device == "cuda"  # env beats the file
    assert s.max_file_bytes == 10  # only the file sets it
    assert s.train.schedule == "hourly" and s.train.on_cpu is True


def test_pyproject_tool_table_and_camel_case_init_options(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.kenning]\nexclude = ["*.csv"]\n')
    s = load_settings(
        tmp_path, environ={}, init_options={"maxFileBytes": 42, "train": {"minNewChunks": 7}}
    )
    assert s.exclude == ("*.csv",)
    assert s.max_file_bytes == 42 and s.train.min_new_chunks == 7


def test_environment_lists_are_comma_separated(tmp_path):
    s = load_settings(tmp_path, environ={"KENNING_EXCLUDE": "*.csv, fixtures/"})
    assert s.exclude == ("*.csv", "fixtures/")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_file_bytes": "lots"}, "max_file_bytes"),
        ({"device": "tpu"}, "device"),
        ({"train": {"schedule": "weekly"}}, "schedule"),
        ({"train": {"on_cpu": "maybe"}}, "train.on_cpu"),
        ({"include": [1, 2]}, "include"),
    ],
)
def test_bad_values_name_the_field(tmp_path, options, field):
    with pytest.raises(SettingsError, match=field):
        load_settings(tmp_path, environ={}, init_options=options)


def test_unknown_keys_are_ignored(tmp_path):  # (and named in a warning, below)
    assert (
        load_settings(tmp_path, environ={}, init_options={"colour": "blue"}).model == DEFAULT_MODEL
    )


def test_default_index_dir_is_per_workspace(tmp_path):
    a, b = tmp_path / "one" / "app", tmp_path / "two" / "app"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    sa, sb = load_settings(a, environ={}), load_settings(b, environ={})
    assert sa.resolved_index_dir(a) != sb.resolved_index_dir(b)


def test_two_workspaces_claiming_one_unclaimed_index_dir_at_once_never_share_it(tmp_path):
    # Two editors' servers (a multi-root workspace) resolve the same unclaimed folder at
    # the same moment: exactly one gets it, the other its own folder inside it.
    from concurrent.futures import ThreadPoolExecutor

    from kenning.server.settings import claim_index_dir, workspace_key

    for attempt in range(20):
        shared = tmp_path / f"index-{attempt}"
        first, second = tmp_path / "first", tmp_path / "second"
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(claim_index_dir, (shared, shared), (first, second)))
        assert len(set(got)) == 2
        assert shared in got
        loser = second if got[0] == shared else first
        assert shared / "folders" / workspace_key(loser) in got
        assert claim_index_dir(shared, loser) == shared / "folders" / workspace_key(loser)


def test_one_index_dir_set_for_two_workspaces_gives_each_its_own_index(tmp_path, capsys):
    from kenning.server.cli import main
    from kenning.server.settings import workspace_key

    shared = tmp_path / "index"
    first, second = tmp_path / "first", tmp_path / "second"
    for ws, code in ((first, "def add(a, b):\n    return a + b\n"), (second, "X = 1\n")):
        ws.mkdir()
        (ws / "mod.py").write_text(code * 3)
    assert main(["index", str(first), "--index-dir", str(shared)]) == 0
    assert main(["index", str(second), "--index-dir", str(shared)]) == 0
    capsys.readouterr()

    settings = load_settings(second, environ={}, cli={"index_dir": str(shared)})
    assert settings.resolved_index_dir(first) == shared.resolve()
    assert settings.resolved_index_dir(second) == shared.resolve() / "folders" / workspace_key(
        second
    )
    assert main(["status", str(first), "--index-dir", str(shared), "--json"]) == 0
    assert '"files": 1' in capsys.readouterr().out


def test_a_dotted_key_and_a_table_of_the_same_name_merge(tmp_path: Path):
    (tmp_path / "kenning.toml").write_text('"train.on_cpu" = true\n[train]\nschedule = "off"\n')
    s = load_settings(tmp_path, environ={})
    assert (s.train.on_cpu, s.train.schedule) == (True, "off")


def test_unknown_keys_are_named_in_a_warning(tmp_path, caplog):
    load_settings(tmp_path, environ={"KENNING_TRAIN__SCHEDUEL": "off", "KENNING_TEST_X": "1"})
    assert [r.getMessage() for r in caplog.records] == [
        "unknown setting 'train.scheduel' (environment) is ignored; "
        "the settings are listed in docs/protocol.md"
    ]


@pytest.mark.parametrize("name", ["batch_size", "max_pairs"])
def test_train_sizes_too_small_to_train_with_are_refused_with_their_source(tmp_path, name):
    with pytest.raises(SettingsError, match=f"'train.{name}' must be at least 2") as raised:
        load_settings(tmp_path, environ={}, init_options={"train": {name: 1}})
    assert (raised.value.field, raised.value.source) == (f"train.{name}", "initializationOptions")


def test_daemon_settings(tmp_path):
    s = load_settings(
        tmp_path, environ={"KENNING_DAEMON__AUTO_START": "yes", "KENNING_DAEMON__IDLE_MINUTES": "5"}
    )
    assert (s.daemon.auto_start, s.daemon.idle_minutes) == (True, 5.0)
    with pytest.raises(SettingsError, match="'daemon.idle_minutes' must be positive"):
        load_settings(tmp_path, environ={"KENNING_DAEMON__IDLE_MINUTES": "0"})
