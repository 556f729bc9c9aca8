"""``plugins check`` underneath: samples redacted and verified as the worker would."""

from __future__ import annotations

from indexer.redaction import RuleSet
from indexer.rulecheck import check_samples, format_result, format_summary
from tests.test_redaction import Exploding, Sloppy


def test_a_finding_left_behind_is_reported_as_residual() -> None:
    """A sloppy rule's leftovers fail the sample as the gate would fail the transcript."""
    rules = RuleSet((Sloppy(),))
    (result,) = check_samples(["a secret and another secret", ""], rules)
    assert not result.ok and result.residual == ("test.sloppy",)
    assert result.redacted == ("a [SECRET] and another secret",)
    text = format_result(result)
    assert "RESIDUAL after redaction (would be quarantined): test.sloppy" in text
    assert format_summary([result], rules).startswith("1 samples, 1 findings (SECRET 1), 1 failed;")


def test_a_rule_that_raises_fails_the_sample() -> None:
    (result,) = check_samples(["call me on 555"], RuleSet((Exploding(),)))
    assert not result.ok and result.error == "rule test.exploding raised RuntimeError"
    assert format_result(result) == "line 1: FAILED: rule test.exploding raised RuntimeError"


def test_a_line_of_json_that_is_not_a_conversation_is_text() -> None:
    (result,) = check_samples(['{"note": "a secret"}'], RuleSet((Sloppy(),)))
    assert result.speakers == ("customer",) and result.redacted == ('{"note": "a [SECRET]"}',)
    assert result.ok
