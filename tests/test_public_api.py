from __future__ import annotations

import engine_adapter
import promptkit


def test_promptkit_all_is_sorted_and_importable() -> None:
    assert promptkit.__all__ == sorted(promptkit.__all__)
    for name in promptkit.__all__:
        assert hasattr(promptkit, name), name


def test_promptkit_exports_every_public_name_it_imports() -> None:
    public = {
        n
        for n, v in vars(promptkit).items()
        if not n.startswith("_") and not isinstance(v, type(promptkit))
    }
    lazy = {"AsyncVLLMEngine", "OpenAIEngine", "VLLMEngine"}  # module __getattr__, see __init__
    assert public - {"annotations", "TYPE_CHECKING", "Any"} | lazy == set(promptkit.__all__)


def test_promptkit_exports_the_engines_and_every_error_class() -> None:
    import engine_adapter.errors
    import promptkit.errors

    for module in (engine_adapter.errors, promptkit.errors):
        for name, value in vars(module).items():
            ours = isinstance(value, type) and value.__module__ == module.__name__
            if ours and issubclass(value, Exception | Warning) and not name.startswith("_"):
                assert name in promptkit.__all__, name
    from engine_adapter.vllm import VLLMEngine

    assert promptkit.VLLMEngine is VLLMEngine


def test_engine_adapter_all_is_sorted_and_importable() -> None:
    assert engine_adapter.__all__ == sorted(engine_adapter.__all__)
    for name in engine_adapter.__all__:
        assert getattr(engine_adapter, name) is not None, name
