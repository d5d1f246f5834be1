"""Template internals: the Jinja environment and tags, static analysis, loading and rendering.

``environment`` compiles (sandbox, tags, tracking); ``analysis`` and ``heuristics`` find what is
wrong with a template (the loader raises the first finding, ``promptkit lint`` reports them all);
``derived_names`` follows ``set``/``for``/macro derivations for both; ``prompt_template`` is the
loaded :class:`~promptkit.PromptTemplate`; ``finder`` resolves a name or a path to one.
Users import :class:`~promptkit.PromptTemplate` and :func:`~promptkit.load_template` from
:mod:`promptkit`.
"""
