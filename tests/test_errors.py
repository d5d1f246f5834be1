"""One exception root: `except PromptkitError` catches every error both packages raise."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import engine_adapter
import engine_adapter.errors
import promptkit
import promptkit.errors
from engine_adapter import EngineError, EngineStartError, FunctionEngine
from promptkit import PromptkitError


def _modules(package: ModuleType) -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        if not info.name.endswith("__main__")  # running it would start the CLI
    ]
    return [package, *(importlib.import_module(name) for name in names)]


def _exception_classes() -> set[type[BaseException]]:
    return {
        value
        for package in (promptkit, engine_adapter)
        for module in _modules(package)
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and not issubclass(value, Warning)  # warnings are not raised as errors
        and value.__module__.split(".")[0] in ("promptkit", "engine_adapter")
        and not name.startswith("_")
    }


def test_every_exception_class_of_both_packages_derives_from_the_one_root() -> None:
    classes = _exception_classes()
    assert {EngineError, EngineStartError, promptkit.errors.TemplateError} <= classes
    assert sorted(c.__qualname__ for c in classes if not issubclass(c, PromptkitError)) == []


def test_the_root_is_one_class_whichever_module_it_is_imported_from() -> None:
    roots = {
        promptkit.PromptkitError,
        promptkit.errors.PromptkitError,
        engine_adapter.PromptkitError,
        engine_adapter.errors.PromptkitError,
    }
    assert len(roots) == 1
    assert promptkit.errors.EngineError is promptkit.EngineError is EngineError


def test_catching_the_root_catches_an_engine_error() -> None:
    engine = FunctionEngine(lambda request: "ok")
    engine.close()
    with pytest.raises(PromptkitError, match="closed"):
        engine.generate([])
