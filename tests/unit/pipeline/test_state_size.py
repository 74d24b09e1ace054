"""The linker warns of a state growing towards the most a state may have: once per key, with the key, its
size, the limit, and where to look."""

from __future__ import annotations

import logging

import pytest

from linked_artifacts.settings import Settings
from pipeline.state_size import WARN_BYTES, StateSizes


def test_the_largest_state_and_its_key_are_kept() -> None:
    sizes = StateSizes(limit=8_000_000)
    for key, size in (("sha256:a", 5_000), ("sha256:b", 90_000), ("slot:x", 700), ("sha256:a", 6_000)):
        sizes.written(key, size)
    assert (sizes.largest_key, sizes.largest_bytes) == ("sha256:b", 90_000)
    assert not sizes.warned


def test_a_state_past_the_warning_size_is_logged_once_per_key(caplog: pytest.LogCaptureFixture) -> None:
    sizes = StateSizes(warn_bytes=1_000, limit=8_000)
    with caplog.at_level(logging.WARNING, logger="pipeline.state_size"):
        sizes.written("sha256:big", 999)
        assert not caplog.records  # below the warning size
        sizes.written("sha256:big", 2_000)
        sizes.written("sha256:big", 3_000)  # growing further: already said
        sizes.written("repo:acme/app", 1_000)
    assert [r.getMessage().split(" is ")[0] for r in caplog.records] == [
        "the state of sha256:big",
        "the state of repo:acme/app",
    ]
    first = caplog.records[0].getMessage()
    assert "2,000 bytes, 25% of the 8,000 bytes a state may have here (worker_state_max_bytes)" in first
    assert "WHERE key = 'sha256:big'" in first  # where to look
    assert sizes.warned == {"sha256:big", "repo:acme/app"}


def test_the_default_warning_comes_at_a_megabyte_an_eighth_of_the_default_limit() -> None:
    limit = Settings.model_fields["worker_state_max_bytes"].default
    sizes = StateSizes(limit=limit)
    assert sizes.warn_bytes == WARN_BYTES == 1024 * 1024
    assert limit == 8 * WARN_BYTES - 64 * 1024  # under the 8 MiB a record may carry: room for its framing
