"""What the linker's log says when Kafka does not take a record (pipeline.worker.SendFailed): which record, on
which topic, and what to change, if anything can be."""

from __future__ import annotations

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from linked_artifacts.topics import RECORD_MAX_BYTES
from pipeline.worker import SendFailed


def test_a_record_the_topic_refuses_names_the_command_that_raises_its_limit() -> None:
    failed = SendFailed("la.linked-artifacts", b"sha256:ab", 2_134_051, MessageSizeTooLargeError())
    text = str(failed)
    assert "the 2,134,051-byte record of sha256:ab on la.linked-artifacts" in text
    assert "--entity-name la.linked-artifacts --add-config max.message.bytes=8388608" in text


def test_a_record_over_the_project_s_limit_says_no_setting_helps() -> None:
    # The client refuses it itself; Faust wraps that error.
    try:
        raise ProducerSendError("Error while sending") from MessageSizeTooLargeError()
    except ProducerSendError as wrapped:
        failed = SendFailed("changelog", b"sha256:cd", RECORD_MAX_BYTES + 1, wrapped)
    text = str(failed)
    assert "MessageSizeTooLargeError" in text and "outgrown one Kafka record" in text
    assert "kafka-configs.sh" not in text


def test_other_failures_are_named_as_they_are() -> None:
    text = str(SendFailed("la.derived", b"slot:prod", 120, KafkaTimeoutError()))
    assert "the 120-byte record of slot:prod on la.derived" in text and "KafkaTimeoutError" in text
    assert "max.message.bytes" not in text
