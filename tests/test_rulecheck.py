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


def test_a_malformed_conversation_line_is_reported_not_taken_as_text() -> None:
    """A line starting with ``{`` is meant as a corpus conversation: when it is not one, the
    sample fails naming why (never quoting it), instead of being redacted as text."""
    lines = ['{"note": "a secret"}', '{"turns": [{"speaker": "customer", "text": "a secret"', "a secret"]
    missing, broken, text = check_samples(lines, RuleSet((Sloppy(),)))
    assert not missing.ok and missing.redacted == ()
    assert missing.error == (
        "malformed input line (a corpus conversation?): required field missing @ conversation.turns"
    )
    assert format_result(broken) == (
        "line 2: FAILED: malformed input line (a corpus conversation?): not valid JSON"
    )
    assert "secret" not in format_result(missing, as_json=True)
    assert text.ok and text.redacted == ("a [SECRET]",)
