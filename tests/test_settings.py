from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from scorer.settings import SettingsError, load_settings, rating_allowed


def test_defaults_env_and_toml(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "moodgif.toml").write_text('http_port = 9000\nexploration_rate = 0.5\nslack_admin_user_ids = ["U1", "U2"]\n')
    s = load_settings(env={"MOODGIF_HOME": str(home), "MOODGIF_HTTP_PORT": "9100"})
    assert s.home == home
    assert s.http_port == 9100  # environment beats the file
    assert s.exploration_rate == 0.5
    assert s.slack_admin_user_ids == ["U1", "U2"]
    assert s.db_url == f"sqlite:///{home / 'moodgif.db'}"


def test_bad_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MOODGIF_HTTP_PORT"):
        load_settings(env={"MOODGIF_HOME": str(tmp_path), "MOODGIF_HTTP_PORT": "eighty"})
    with pytest.raises(SettingsError, match="RATING_CEILING"):
        load_settings(env={"MOODGIF_HOME": str(tmp_path), "MOODGIF_RATING_CEILING": "x"})
    (tmp_path / "moodgif.toml").write_text("nonsense_key = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(env={"MOODGIF_HOME": str(tmp_path)})


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        "MOODGIF_HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": "xoxb-very-secret-token",
        "DISCORD_TOKEN": "discord-secret-abc",
        "MOODGIF_DATABASE_URL": "postgresql://moodgif:hunter2@db/moodgif",
    }
    result = CliRunner().invoke(cli, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "xoxb-very-secret-token" not in result.output
    assert "discord-secret-abc" not in result.output
    assert "hunter2" not in result.output
    assert "slack_bot_token" in result.output and "***" in result.output


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "show"], env={"MOODGIF_HOME": str(tmp_path), "MOODGIF_DEVICE": "tpu"})
    assert result.exit_code == 2
    assert "MOODGIF_DEVICE" in result.output


def test_rating_ceiling() -> None:
    assert rating_allowed("g", "pg")
    assert not rating_allowed("r", "pg-13")
    assert rating_allowed(None, "pg-13") and not rating_allowed(None, "pg")


def test_score_batch_size_zero_means_auto(tmp_path: Path) -> None:
    from scorer.pipeline import CPU_BATCH_SIZE, auto_batch_size

    assert load_settings(env={"MOODGIF_HOME": str(tmp_path)}).score_batch_size == 0
    assert auto_batch_size("cpu") == CPU_BATCH_SIZE
    with pytest.raises(SettingsError, match="SCORE_BATCH_SIZE"):
        load_settings(env={"MOODGIF_HOME": str(tmp_path), "MOODGIF_SCORE_BATCH_SIZE": "-1"})
