"""The record every decoding run produces: one entry per forward pass, JSON-serialisable."""
from dataclasses import asdict, dataclass, field


@dataclass
class Pass:
    """One forward pass of a decoder.

    Positions count generated tokens (0 = first new token). `window` is what was fed at
    positions start..start+len(window)-1 (empty for the prefill); `guess` is the decoder's
    belief after the pass at positions start.., i.e. the Jacobi state; `new_tokens` are the
    tokens this pass made final (verified), in order. `origins` says where each window slot's guess
    came from ("model": the previous pass's prediction, "random": a refill); `branches` are the candidate
    continuations fed beside the window in the same pass, `branch_origins` where each came from ("ngram" or
    "recycled"), and `winner` the one whose tokens were kept: 0 for the window, i for branches[i - 1].
    """
    index: int
    block: int
    start: int
    window: list[int]
    guess: list[int]
    new_tokens: list[int]
    seconds: float
    cache_len: int
    guess_text: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    branches: list[list[int]] = field(default_factory=list)
    branch_origins: list[str] = field(default_factory=list)
    winner: int = 0


@dataclass
class DecodeResult:
    """A whole run: the prompt, the generated tokens (ending at and including EOS) and its passes."""
    decoder: str  # "ar" or "jacobi"
    scheme: str | None  # "sliding", "block" or None for AR
    block_size: int
    prompt_ids: list[int]
    token_ids: list[int]
    passes: list[Pass]
    stop_reason: str  # "eos" or "length"
    text: str = ""

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.passes)

    def to_dict(self) -> dict:
        return asdict(self) | {"seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "DecodeResult":
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        fields["passes"] = [Pass(**p) for p in d["passes"]]
        return cls(**fields)
