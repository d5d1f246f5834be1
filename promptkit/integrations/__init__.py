"""Adapters that put promptkit under other frameworks' APIs.

Each integration lives in its own module and imports its framework there, so importing this
package costs nothing and needs no extra installed:

* :mod:`promptkit.integrations.langchain` -- ``ChatPromptkit``, a LangChain chat model
  (``pip install 'promptkit-vllm[langchain]'``).
"""
