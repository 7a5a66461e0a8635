"""llmcls.serve.settings.ServeSettings beyond what test_batcher.py checks (a few refusals, the JSON round trip):
every bound and its message, the Host names answered, the bearer token file, what a worker ignores in the JSON
it is handed, and the limits /v1/info reports."""

from __future__ import annotations

import dataclasses
import json

import pytest

from llmcls.errors import ConfigError
from llmcls.serve.settings import ServeSettings

POSITIVE = [
    "port",
    "workers",
    "max_batch_texts",
    "max_texts",
    "max_bytes",
    "max_text_chars",
    "max_request_tokens",
    "max_windows_per_text",
    "max_concurrent",
    "max_queue_texts",
]


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("value", [0, -5])
def test_every_count_must_be_at_least_one(name, value):
    with pytest.raises(ConfigError) as caught:
        ServeSettings(**{name: value})
    assert str(caught.value) == f"serve --{name.replace('_', '-')}: must be at least 1 (got {value})"


@pytest.mark.parametrize("name, flag", [("request_timeout_s", "request-timeout"), ("read_timeout_s", "read-timeout")])
def test_timeouts_are_over_zero_and_at_most_an_hour(name, flag):
    for bad in (0, -1, 3600.5):
        with pytest.raises(ConfigError) as caught:
            ServeSettings(**{name: bad})
        assert str(caught.value) == f"serve --{flag}: must be between 0 and 3600 seconds (got {bad})"
    assert getattr(ServeSettings(**{name: 3600}), name) == 3600
    assert getattr(ServeSettings(**{name: 0.01}), name) == 0.01


def test_batch_wait_and_batch_size_bounds():
    assert ServeSettings(batch_wait_ms=0).batch_wait_ms == 0 and ServeSettings(batch_wait_ms=1000).batch_wait_ms == 1000
    with pytest.raises(ConfigError, match=r"^serve --batch-wait-ms: must be between 0 and 1000 \(got 1000.5\)$"):
        ServeSettings(batch_wait_ms=1000.5)
    with pytest.raises(ConfigError, match=r"^serve --batch-size: must be at least 1 \(got 0\)$"):
        ServeSettings(batch_size=0)
    assert ServeSettings().batch_size is None and ServeSettings(batch_size=1).batch_size == 1


def test_the_queue_holds_at_least_one_full_request():
    assert ServeSettings(max_texts=50, max_queue_texts=50).max_queue_texts == 50
    with pytest.raises(ConfigError) as caught:
        ServeSettings(max_texts=50, max_queue_texts=49)
    assert str(caught.value) == (
        "serve --max-queue-texts: must be at least --max-texts (50), or a full request could never be queued (got 49)"
    )


def test_settings_are_frozen_and_keyword_only():
    settings = ServeSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_texts = 10
    with pytest.raises(TypeError):
        ServeSettings("0.0.0.0")


def test_the_hosts_answered_by_default_are_the_bound_address_and_localhost():
    assert ServeSettings().hosts() == frozenset({"127.0.0.1", "localhost", "::1"})
    assert ServeSettings(host="MyBox.Local").hosts() == frozenset({"mybox.local", "localhost", "127.0.0.1", "::1"})
    assert ServeSettings(host="0.0.0.0").hosts() == frozenset({"0.0.0.0", "localhost", "127.0.0.1", "::1"})


def test_allowed_hosts_replace_the_defaults_lower_cased_and_a_star_allows_any():
    settings = ServeSettings(allowed_hosts=["API.Example.org", "10.0.0.5"])
    assert settings.allowed_hosts == ("api.example.org", "10.0.0.5")  # a tuple, lower case
    assert settings.hosts() == frozenset({"api.example.org", "10.0.0.5"})  # localhost no longer
    assert ServeSettings(allowed_hosts=("*",)).hosts() is None
    assert ServeSettings(allowed_hosts=("example.org", "*")).hosts() is None


def test_the_token_is_read_from_its_file(tmp_path):
    assert ServeSettings().read_token() is None  # no file: no authentication
    path = tmp_path / "token"
    path.write_text("  s3cret-T0ken \n\n", encoding="utf-8")
    assert ServeSettings(token_file=path).read_token() == "s3cret-T0ken"


@pytest.mark.parametrize("content", ["", "\n  \n", "two words\n", "line\nbreak\n", "tab\there"])
def test_a_token_file_without_exactly_one_token_is_refused(tmp_path, content):
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ServeSettings(token_file=path).read_token()
    assert str(caught.value) == f"--token-file {path}: expected one token (no spaces) on one line"


def test_an_unreadable_token_file_says_why(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        ServeSettings(token_file=missing).read_token()
    assert str(caught.value) == f"--token-file {missing}: cannot read: No such file or directory"
    with pytest.raises(ConfigError, match=r"cannot read: Is a directory"):
        ServeSettings(token_file=tmp_path).read_token()


def test_a_token_file_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=f"--token-file {binary}"):
        ServeSettings(token_file=binary).read_token()


def test_a_worker_takes_the_settings_it_knows_from_the_json(tmp_path):
    sent = json.loads(ServeSettings(port=9001, token_file=tmp_path / "t", allowed_hosts=("a.example",)).to_json())
    assert sent["token_file"] == str(tmp_path / "t") and sent["allowed_hosts"] == ["a.example"]
    sent["added_in_a_later_version"] = 1
    del sent["allowed_hosts"]
    received = ServeSettings.from_json(json.dumps(sent))
    assert received.port == 9001 and received.token_file == tmp_path / "t" and received.allowed_hosts == ()
    no_token = json.loads(ServeSettings().to_json())
    assert no_token["token_file"] is None and ServeSettings.from_json(json.dumps(no_token)).token_file is None
    with pytest.raises(ConfigError, match="serve --max-texts"):  # checked again on arrival
        ServeSettings.from_json(json.dumps({**no_token, "max_texts": 0}))


def test_the_limits_info_reports():
    settings = ServeSettings(
        max_texts=10,
        max_bytes=5000,
        max_text_chars=300,
        max_request_tokens=1000,
        max_windows_per_text=4,
        request_timeout_s=2.5,
        max_queue_texts=100,
        max_concurrent=3,
    )
    assert settings.limits() == {
        "max_texts": 10,
        "max_bytes": 5000,
        "max_text_chars": 300,
        "max_request_tokens": 1000,
        "max_windows_per_text": 4,
        "request_timeout_s": 2.5,
    }
