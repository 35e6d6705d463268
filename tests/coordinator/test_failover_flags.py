"""`serve --heartbeat-seconds/--failover-silence-seconds` (and their --config keys): how often a
master on PostgreSQL heartbeats and how long a silent one keeps its sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator import cli
from coordinator.config import CoordinatorConfig


class Started(Exception):
    """Raised instead of serving: the test has the configuration it wanted."""


def _config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> CoordinatorConfig:
    seen: list[CoordinatorConfig] = []

    def capture(config: CoordinatorConfig) -> None:
        seen.append(config)
        raise Started

    monkeypatch.setattr(cli, "make_app", capture)
    with pytest.raises(Started):
        cli.main(argv)
    return seen[0]


def test_defaults_are_two_second_heartbeats_and_ten_seconds_of_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(monkeypatch, ["serve", "--data", str(tmp_path / "d")])
    assert (config.heartbeat_interval, config.failover_silence) == (2.0, 10.0)


def test_flags_set_the_watcher_s_interval_and_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["serve", "--data", str(tmp_path / "d"), "--heartbeat-seconds", "0.5"]
    config = _config(monkeypatch, [*argv, "--failover-silence-seconds", "4"])
    assert (config.heartbeat_interval, config.failover_silence) == (0.5, 4.0)


def test_config_file_keys_set_them_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "coordinator.toml"
    conf.write_text("heartbeat_seconds = 1\nfailover_silence_seconds = 30\n", encoding="utf-8")
    argv = ["serve", "--data", str(tmp_path / "d"), "--config", str(conf)]
    config = _config(monkeypatch, argv)
    assert (config.heartbeat_interval, config.failover_silence) == (1.0, 30.0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--heartbeat-seconds", "0"], "--heartbeat-seconds must be 0.1..60"),
        (["--heartbeat-seconds", "61"], "--heartbeat-seconds must be 0.1..60"),
        (
            ["--heartbeat-seconds", "2", "--failover-silence-seconds", "5"],
            "--failover-silence-seconds must be at least three heartbeats (6 s with "
            "--heartbeat-seconds 2) and at most 3600",
        ),
        (["--failover-silence-seconds", "3601"], "--failover-silence-seconds must be at least"),
    ],
)
def test_bad_values_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["serve", "--data", str(tmp_path / "data"), *flags]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_a_value_that_is_no_number_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--data", str(tmp_path / "data"), "--heartbeat-seconds", "soon"]
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert "invalid float value: 'soon'" in capsys.readouterr().err
