"""The PII benchmark's data and scoring (the benchmark itself runs with ``make bench-pii``)."""

from __future__ import annotations

import random
import re

import pytest

from indexer_pii import benchmark
from indexer_pii.spoken import normalize


@pytest.mark.parametrize(
    ("value", "entity_type"),
    [
        ("4111 1111 1111 1111", "CREDIT_CARD"),
        ("GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
        ("+1-437-586-5797x543", "PHONE_NUMBER"),
        ("192.168.0.10", "IP_ADDRESS"),
    ],
)
def test_spoken_values_read_back_to_their_characters(value: str, entity_type: str) -> None:
    """What ``speak`` writes has no digits, and the normaliser reads the value back from it."""
    rng = random.Random(3)
    for _ in range(20):
        said = benchmark.speak(value, entity_type, rng)
        assert not re.search(r"\d", said)
        normalized = normalize(said)
        assert normalized is not None
        wanted = re.sub(r"[^0-9a-z+.]", "", value.split("x")[0].lower())
        assert re.sub(r"[^0-9a-z+.]", "", normalized.text) == wanted, said


def test_spoken_email() -> None:
    said = benchmark.speak("lisa73@mail.example.com", "EMAIL_ADDRESS", random.Random(1))
    assert said.startswith("lisa ") and said.endswith(" at mail dot example dot com")


def test_our_rules_meet_the_recall_and_precision_targets_on_a_small_sample() -> None:
    """The benchmark's scoring on a small sample: the targets that do not depend on size."""
    samples = [*benchmark.labelled_samples(40, seed=5), *benchmark.non_pii_samples(200, seed=5)]
    scores = benchmark.score(benchmark.ours(), samples)
    for entity_type in ("CREDIT_CARD", "US_SSN", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS"):
        for form in ("written", "spoken"):
            assert scores.recall(entity_type, form) >= 0.97, (entity_type, form)
    assert scores.recall("PHONE_NUMBER", "written") >= 0.95
    assert scores.precision() >= 0.99
    assert scores.intact == scores.non_pii == 200


def test_score_counts_partial_cover_as_a_miss_and_stray_findings_against_precision() -> None:
    sample = benchmark.Sample("card 4111 1111 1111 1111 ok", ((5, 24, "CREDIT_CARD"),), "written")
    half = benchmark.score(lambda text, lead: [(5, 14, "CREDIT_CARD"), (25, 27, "CVV")], [sample])
    assert half.recall("CREDIT_CARD", "written") == 0.0
    assert half.precision() == 0.5


def test_the_benchmark_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code = benchmark.main(["--values", "10", "--non-pii", "30", "--conversations", "10", "--no-presidio"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    for heading in ("Recall:", "Precision:", "Throughput:"):
        assert heading in out
    assert re.search(r"^passage\s+\d+\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE)
