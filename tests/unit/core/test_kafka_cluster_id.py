"""The KRaft cluster id given to `kafka-storage format`: a value its argument parser cannot mistake for an
option. A leading '-' (one in 64 random ids) made the first `up` of a fresh data directory fail."""

from __future__ import annotations

import base64
import uuid

import pytest

from linked_artifacts.stack import kafka


def test_cluster_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    ids = {kafka._cluster_id() for _ in range(5_000)}
    assert len(ids) == 5_000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dash_first = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    draws = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert kafka._cluster_id() == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
