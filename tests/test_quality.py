"""Output quality: token repeats, phrase loops, the answer format and the training guard."""
from helpers import MAX_NEW, ROWS

from model_utils.quality import (
    LOOP_SPAN,
    QualityGuard,
    extract_answer,
    has_loop,
    has_repeat,
    is_degenerate,
    longest_loop,
)


def test_a_token_said_ten_times_in_a_row_is_a_repeat():
    assert has_repeat([5] * 10) and not has_repeat([5] * 9 + [6] + [5] * 9)


def test_phrase_loops_are_degenerate_and_ordinary_repeats_are_not():
    phrase = [11, 12, 13, 14, 15]  # "the first day, " said over and over
    assert longest_loop([1, 2] + phrase * 4 + [3]) == 20
    assert is_degenerate([1, 2] + phrase * 4) and is_degenerate([7] * 10)
    assert not is_degenerate([1, 2] + phrase * 2 + [3])  # said twice: no loop
    assert not is_degenerate([4, 5] * 7 + [9])  # a 2-token phrase thrice is a loop, but 15 tokens < LOOP_SPAN
    assert LOOP_SPAN == 16 and is_degenerate([4, 5] * 8)
    long_phrase = list(range(100, 140))  # 40 tokens: longer than any phrase looked for
    assert not is_degenerate(long_phrase * 3)


def test_a_loop_needs_three_times_the_phrase_and_the_span():
    assert has_loop([4, 5] * 8) and not has_loop([4, 5] * 7)
    assert longest_loop(list(range(20)) * 2) == 0  # a 20-token phrase said twice: not a loop
    assert longest_loop([3, 1, 2, 1, 2, 1, 2, 9]) == 6


def test_the_answer_is_the_number_after_the_last_marks():
    assert extract_answer("She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7") == "7"
    assert extract_answer("#### 2\nno, wait\n#### $1,250") == "1250"
    assert extract_answer("#### 12.0") == "12" and extract_answer("#### -3.5") == "-3.5"
    assert extract_answer("#### 0.5") == "0.5"
    assert extract_answer("The answer is 7.") is None and extract_answer("####") is None


def test_quality_guard_warns_when_loops_appear_or_the_format_falls(loaded):
    model, tokenizer = loaded
    guard = QualityGuard(tokenizer, [row["prompt"] for row in ROWS[:2]], max_new_tokens=MAX_NEW)
    first = guard.check(model)
    assert first["n"] == 2 and first["warning"] is None and guard.check(model)["warning"] is None
    worse = first | {"collapsed": first["collapsed"] + 1}
    assert "loop over one phrase" in guard.warning(worse)
    assert "answer format fell" in guard.warning(first | {"format_rate": first["format_rate"] - 0.5})


def test_quality_guard_leaves_the_model_in_the_mode_it_found(loaded):
    model, tokenizer = loaded
    guard = QualityGuard(tokenizer, [ROWS[0]["prompt"]], max_new_tokens=8)
    model.train()
    try:
        guard.check(model)
        assert model.training
    finally:
        model.eval()
    guard.check(model)
    assert not model.training
