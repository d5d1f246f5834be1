"""Sampling settings checked against vLLM's own limits, before anything reaches an engine.

vLLM validates ``SamplingParams`` only once a request is inside the engine, and some values it
does not check at all break the engine core for every later request (a ``seed`` beyond 64 bits,
a fractional ``max_tokens``). So every field is validated here, with pydantic in strict mode (a
``bool`` is not an ``int``, ``5.5`` is not an ``int``), to the limits of
``vllm.SamplingParams._verify_args`` (vLLM 0.32): ``max_tokens >= 1``, ``0 <= temperature <= 2``,
``0 < top_p <= 1``, finite floats, non-empty stop strings, a 64-bit seed, ``0 <= logprobs <= 20``
(the engine's default ``max_logprobs``).

The error is :class:`~engine_adapter.errors.SamplingError`, naming the field and the value.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from engine_adapter.errors import SamplingError

__all__ = ["MAX_LOGPROBS", "MAX_SEED", "check_sampling"]

#: The largest seed accepted: vLLM hands it to ``torch.Generator.manual_seed`` through a
#: MessagePack transport that carries 64-bit integers; non-negative keeps it portable.
MAX_SEED = 2**63 - 1
#: vLLM's default ``max_logprobs`` (an engine started with more may accept more).
MAX_LOGPROBS = 20
_MAX_TOKEN_ID = 2**31 - 1


def _utf8(value: str) -> str:
    value.encode("utf-8")  # a lone surrogate cannot cross to the engine: UnicodeEncodeError
    return value


_StopString = Annotated[str, Field(min_length=1), AfterValidator(_utf8)]
_TokenId = Annotated[int, Field(ge=0, le=_MAX_TOKEN_ID)]


class _SamplingLimits(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    max_tokens: int = Field(ge=1, le=_MAX_TOKEN_ID)
    temperature: float = Field(ge=0.0, le=2.0)
    top_p: float = Field(gt=0.0, le=1.0)
    seed: int | None = Field(ge=0, le=MAX_SEED)
    stop: tuple[_StopString, ...]
    stop_token_ids: tuple[_TokenId, ...]
    logprobs: int | None = Field(ge=0, le=MAX_LOGPROBS)


def _float_ok(value: Any) -> Any:
    # Strict pydantic refuses an int for a float field; ``temperature=1`` is plainly meant.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_sampling(fields: dict[str, Any]) -> None:
    """Raise :class:`SamplingError` unless every field is within vLLM's limits."""
    values = dict(fields)
    for name in ("temperature", "top_p"):
        if name in values:
            values[name] = _float_ok(values[name])
    try:
        _SamplingLimits.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}={error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise SamplingError(
            f"invalid sampling settings: {problems} (see SamplingSettings for the limits)"
        ) from None
