"""A tiny automatic prefix cache, written independently of promptkit's own mirror.

It drives :class:`engine_adapter.FunctionEngine` in the engine-free test tier. It knows only what
vLLM documents: full blocks are cached, keyed by the whole prefix up to them and the cache salt;
a request reuses its longest cached run of leading full blocks, never its last token; generated
tokens are cached too, all but the last (sampled, never fed back). Keys are plain tuples of ids,
so a bug in promptkit's block hashing cannot hide behind the same bug here.
"""

from __future__ import annotations

from engine_adapter import EngineRequest, EngineResult, FunctionEngine


class SimulatedPrefixCache:
    """The responder: answers ``answer`` and reports the cached tokens a real APC would."""

    def __init__(
        self,
        *,
        block_size: int = 32,
        answer: str = " ok",
        answer_ids: tuple[int, ...] = (),
        report: bool = True,
    ) -> None:
        self.block_size = block_size
        self.answer = answer
        #: The generated ids (a conversation sends them back in its next prompt).
        self.answer_ids = answer_ids
        #: False: report ``num_cached_tokens=None``, as a server without prompt-tokens details.
        self.report = report
        self.blocks: set[tuple[str, tuple[int, ...]]] = set()

    def engine(self) -> FunctionEngine:
        return FunctionEngine(self, block_size=self.block_size)

    def evict_all(self) -> None:
        """Lose every block without telling the client (a restart, an eviction)."""
        self.blocks.clear()

    def __call__(self, request: EngineRequest) -> EngineResult:
        ids, size, salt = request.prompt_token_ids, self.block_size, request.cache_salt or ""
        usable = (len(ids) - 1) // size if ids else 0
        hit = 0
        while hit < usable and (salt, ids[: (hit + 1) * size]) in self.blocks:
            hit += 1
        computed = ids + self.answer_ids[:-1]
        for end in range(size, len(computed) + 1, size):
            self.blocks.add((salt, computed[:end]))
        return EngineResult(
            prompt_token_ids=ids,
            num_cached_tokens=hit * size if self.report else None,
            text=self.answer,
            token_ids=self.answer_ids,
            finish_reason="stop",
            ttft_s=None,
            latency_s=0.0,
            timing_source="measured",
        )
