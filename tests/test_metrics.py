"""Fast-forwarded and stationary counting by the reference's definitions (§2)."""
from model_utils.metrics import block_progress, progress
from model_utils.records import DecodeResult, Pass


def as_state(tokens: str) -> dict[int, str]:
    return dict(enumerate(tokens.split()))


def test_worked_example_of_the_reference():
    states = [as_state(s) for s in ("a b q d r f", "a b c d s f", "a b c d e f")]
    result = progress(states, "a b c d e f".split())
    assert result.fast_forward == [2, 2, 2]
    assert result.stationary == [3, 5]  # d and f
    assert result.final_at == [0, 0, 1, 1, 2, 2]


def test_a_token_that_changes_again_is_not_stationary():
    states = [as_state(s) for s in ("a x c y", "a b z d", "a b c d")]
    result = progress(states, "a b c d".split())
    assert result.fast_forward == [1, 1, 2]
    assert result.stationary == [3]  # c was right at s1 but changed at s2; d right since s2, covered at s3


def test_block_progress_reads_a_block_scheme_record():
    # one block of 4 after the prefill; the confirming pass repeats the fixed point and adds nothing
    passes = [
        Pass(0, -1, 0, [], [10], [10], 0.0, 3),
        Pass(1, 0, 0, [10, 7, 7, 7], [10, 11, 5, 13], [11], 0.0, 5),
        Pass(2, 0, 1, [11, 5, 13], [11, 12, 13], [12], 0.0, 5),
        Pass(3, 0, 2, [12, 13], [12, 13], [13, 14], 0.0, 7),
    ]
    result = DecodeResult("jacobi", "block", 4, [1, 2, 3], [10, 11, 12, 13, 14], passes, "length")
    (block,) = block_progress(result)
    assert block.fast_forward == [2, 2, 0]
    assert block.stationary == [3]
