from wagate.domain import ids


def test_message_ids_sort_by_time() -> None:
    early = ids.new_id("msg", now_ms=1_000, entropy=b"\xff" * 10)
    late = ids.new_id("msg", now_ms=1_001, entropy=b"\x00" * 10)
    assert early < late
    assert ids.is_valid_id(early) and ids.is_valid_id(late)


def test_derived_names_are_stable_and_distinct() -> None:
    a, b = ids.new_message_id(), ids.new_message_id()
    assert ids.whatsapp_message_id(a) == ids.whatsapp_message_id(a)
    assert ids.whatsapp_message_id(a) != ids.whatsapp_message_id(b)
    assert ids.whatsapp_message_id(a).startswith("3EB0")
    assert ids.send_task_name(a) == ids.send_task_name(a)
    assert ids.send_task_name(a, 1) != ids.send_task_name(a, 0)


def test_invalid_ids_are_rejected() -> None:
    for bad in ["", "msg_", "msg_lowercaseisnotcrockford", "../etc/passwd", "msg_" + "I" * 26]:
        assert not ids.is_valid_id(bad)
