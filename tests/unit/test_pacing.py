from runner.pacing import Pacer, TokenBucket


def test_a_burst_is_allowed_then_the_rate_applies() -> None:
    bucket = TokenBucket(rate=1.0, burst=5, updated=0.0)
    assert [bucket.take(now=0.0) for _ in range(5)] == [0.0] * 5
    wait = bucket.take(now=0.0)
    assert 0.99 <= wait <= 1.0
    assert bucket.take(now=1.0) == 0.0
    assert bucket.take(now=1.0) > 0


def test_tokens_refill_up_to_the_burst_only() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, updated=0.0)
    for _ in range(3):
        bucket.take(now=0.0)
    assert [bucket.take(now=100.0) for _ in range(3)] == [0.0] * 3
    assert bucket.take(now=100.0) > 0


def test_a_send_that_did_not_happen_gives_its_token_back() -> None:
    pacer = Pacer()
    assert pacer.take("s1", 1.0, 1) == 0.0
    assert pacer.take("s1", 1.0, 1) > 0
    pacer.give_back("s1")
    assert pacer.take("s1", 1.0, 1) == 0.0


def test_sessions_are_paced_independently_and_limits_can_change() -> None:
    pacer = Pacer()
    assert pacer.take("a", 1.0, 1) == 0.0
    assert pacer.take("b", 1.0, 1) == 0.0
    assert pacer.take("a", 1.0, 1) > 0
    assert pacer.take("a", 10.0, 10) == 0.0  # a tenant raised its limits: a new bucket
