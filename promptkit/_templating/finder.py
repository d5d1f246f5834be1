"""Finding templates: a path, or the name of a template shipped in ``templates/``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from promptkit._templating.prompt_template import PromptTemplate
from promptkit.errors import TemplateError

__all__ = ["TEMPLATE_SUFFIX", "load_template", "shipped_templates", "shipped_templates_dir"]

TEMPLATE_SUFFIX = ".j2"


def shipped_templates_dir() -> Path:
    """Where the shipped templates live: the repo's ``templates/``, or the installed copy."""
    package = Path(__file__).resolve().parents[1]  # promptkit/, beside the checkout's templates/
    for candidate in (package.parent / "templates", package / "data" / "templates"):
        if candidate.is_dir():
            return candidate
    return package.parent / "templates"


def shipped_templates() -> list[Path]:
    return sorted(shipped_templates_dir().glob(f"*{TEMPLATE_SUFFIX}"))


def load_template(name_or_path: str | Path) -> PromptTemplate:
    """Load a template file, or a shipped template by name (``"long_doc_qa"``)."""
    if not isinstance(name_or_path, str | Path):
        raise TemplateError(
            f"a template is named by a str or a Path, not {type(name_or_path).__name__}"
        )
    path = Path(name_or_path)
    if path.suffix != TEMPLATE_SUFFIX and not path.exists():
        if path.name != str(name_or_path) or path.name in ("", ".", ".."):
            # A shipped template's name is a bare name: never a path out of templates/.
            raise TemplateError(
                f"no template file {str(name_or_path)!r}, and a shipped template's name has no "
                "directory part: pass a path to an existing .jinja file, or a bare name"
            )
        path = shipped_templates_dir() / f"{name_or_path}{TEMPLATE_SUFFIX}"
        if not path.is_file():
            names = ", ".join(p.stem for p in shipped_templates())
            raise TemplateError(
                f"no template file or shipped template named {str(name_or_path)!r} "
                f"(shipped: {names})"
            )
    return _load(path.resolve(), path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=128)
def _load(path: Path, mtime: int) -> PromptTemplate:
    return PromptTemplate.from_file(path)
