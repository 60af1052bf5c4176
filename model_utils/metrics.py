"""Fast-forwarded and stationary tokens (reference §2) and the speed figures of a run."""
from dataclasses import dataclass

from model_utils.records import DecodeResult

State = dict[int, int]  # position -> token held there after a pass


@dataclass
class Progress:
    """What each pass fixed, measured against the final tokens."""
    fast_forward: list[int]  # per state: growth of the contiguous correct prefix
    stationary: list[int]  # positions that were correct, and stayed so, before the prefix reached them
    final_at: list[int]  # per position: index of the state whose correct prefix first covered it
    correct_since: list[int]  # per position: first state from which it held its final token to the end


def progress(states: list[State], final: list[int]) -> Progress:
    """Official counting over states s1..sm: ff_k = prefix growth; stationary iff correct before covered."""
    n = len(final)
    fast_forward, final_at, prefix = [], [len(states)] * n, 0
    for k, state in enumerate(states):
        new_prefix = prefix
        while new_prefix < n and state.get(new_prefix) == final[new_prefix]:
            new_prefix += 1
        new_prefix = max(new_prefix, prefix)
        for pos in range(prefix, new_prefix):
            final_at[pos] = k
        fast_forward.append(new_prefix - prefix)
        prefix = new_prefix
    correct_since = [len(states)] * n
    for pos in range(n):
        for k in range(len(states) - 1, -1, -1):
            if states[k].get(pos) != final[pos]:
                break
            correct_since[pos] = k
    stationary = [pos for pos in range(n) if correct_since[pos] < final_at[pos]]
    return Progress(fast_forward, stationary, final_at, correct_since)


def pass_states(result: DecodeResult) -> list[State]:
    """The state after every pass: the tokens made final so far plus that pass's guess."""
    states, known = [], []
    for p in result.passes:
        state = {p.start + i: t for i, t in enumerate(p.guess)}
        known += p.new_tokens
        state.update(enumerate(known))
        states.append(state)
    return states


def run_progress(result: DecodeResult) -> Progress:
    return progress(pass_states(result), result.token_ids)


def block_progress(result: DecodeResult) -> list[Progress]:
    """Per block of the block scheme, in block coordinates, exactly as the official analysis."""
    blocks: dict[int, list] = {}
    for p, state in zip(result.passes, pass_states(result)):
        if p.window:  # the prefill belongs to no block
            blocks.setdefault(p.block, []).append((p, state))
    out = []
    for items in blocks.values():
        start = items[0][0].start
        end = min(start + len(items[0][0].window), len(result.token_ids))
        final = result.token_ids[start:end]
        states = [{pos - start: t for pos, t in state.items() if start <= pos < end} for _, state in items]
        out.append(progress(states, final))
    return out


def summarize(result: DecodeResult) -> dict:
    """The headline numbers of one run."""
    prog = run_progress(result)
    n_tokens, n_passes, seconds = len(result.token_ids), len(result.passes), result.seconds
    n_blocks = max(1.0, n_tokens / result.block_size)
    return {
        "tokens": n_tokens,
        "forward_passes": n_passes,
        "tokens_per_forward": n_tokens / n_passes if n_passes else 0.0,
        "seconds": seconds,
        "tokens_per_second": n_tokens / seconds if seconds > 0 else 0.0,
        "fast_forward_per_pass": prog.fast_forward,
        "fast_forwarded": sum(max(ff - 1, 0) for ff in prog.fast_forward),
        "stationary": len(prog.stationary),
        "fast_forwarded_per_block": sum(max(ff - 1, 0) for ff in prog.fast_forward) / n_blocks,
        "stationary_per_block": len(prog.stationary) / n_blocks,
    }
