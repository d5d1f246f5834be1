"""Tenants (docs/tenants.md): salts are HMACs of the tenant id, never the id; a multi-tenant
client refuses a request without a tenant; an empty salt is an error; logs keep a digest only.

The cross-tenant cache isolation itself is checked on the real engine in
tests/test_tenancy_engine.py; here the prefix cache is the simulator of tests/prefix_cache_fake.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_adapter import EngineRequest, EngineRequestError, FunctionEngine
from promptkit import (
    Client,
    Conversation,
    PromptTemplate,
    SharedCache,
    Tenancy,
    TenantError,
    Tokenizer,
)
from promptkit._tenancy import SECRET_ENV, salt_digest
from tests.prefix_cache_fake import SimulatedPrefixCache
from tests.sample_templates import DOCUMENT, QA

SECRET = b"a deployment secret of 32 bytes!"


@pytest.fixture()
def cache() -> SimulatedPrefixCache:
    return SimulatedPrefixCache(block_size=32)


def _client(cache: SimulatedPrefixCache, tokenizer: Tokenizer, **kwargs: object) -> Client:
    return Client(engine=cache.engine(), tokenizer=tokenizer, **kwargs)  # type: ignore[arg-type]


def _ask(client: Client, **kwargs: object) -> int | None:
    qa = PromptTemplate.from_string(QA, name="qa")
    out = client.generate(qa, {"document": DOCUMENT, "question": "When?"}, **kwargs)  # type: ignore[arg-type]
    return out.record.cached_tokens


def test_a_tenant_salt_is_a_keyed_hash_never_the_id() -> None:
    tenancy = Tenancy(secret=SECRET)
    salt = tenancy.salt("alice")
    assert "alice" not in salt and salt.startswith("t-") and len(salt) == 34
    assert salt == Tenancy(secret=SECRET).salt("alice")  # stable: the tenant keeps its hits
    assert salt != tenancy.salt("bob")
    assert salt != Tenancy(secret=b"another secret, also 32 bytes..").salt("alice")


def test_two_tenants_share_nothing_and_each_keeps_its_hits(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer
) -> None:
    client = _client(cache, tokenizer, tenancy=Tenancy(secret=SECRET))
    assert _ask(client, tenant="alice") == 0
    assert _ask(client, tenant="bob") == 0
    assert (_ask(client, tenant="alice") or 0) > 0


def test_a_multi_tenant_client_refuses_a_request_without_a_tenant(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer
) -> None:
    client = _client(cache, tokenizer, tenancy=Tenancy(secret=SECRET))
    with pytest.raises(TenantError, match="tenant="):
        _ask(client)
    assert not client.records


def test_a_shared_prefix_opts_in_explicitly(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer
) -> None:
    client = _client(cache, tokenizer, tenancy=Tenancy(secret=SECRET))
    assert _ask(client, tenant=SharedCache.SHARED) == 0
    assert (_ask(client, tenant=SharedCache.SHARED) or 0) > 0
    assert _ask(client, tenant="alice") == 0  # a tenant never reads the shared entries
    assert client.records[-1].cache_salt is not None
    assert client.records[0].cache_salt is None


def test_the_client_default_tenant_salts_requests_that_name_none(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer
) -> None:
    client = _client(cache, tokenizer, tenancy=Tenancy(secret=SECRET), tenant="alice")
    _ask(client)
    assert (_ask(client, tenant="alice") or 0) > 0  # the same salt as the default
    assert _ask(client, tenant="bob") == 0


def test_the_secret_comes_from_the_environment(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    client = _client(cache, tokenizer)
    assert client.tenancy is not None and client.tenancy.required
    with pytest.raises(TenantError):
        _ask(client)
    assert _ask(client, tenant="alice") == 0


def test_a_tenant_without_a_secret_is_an_error_not_a_raw_salt(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    client = _client(cache, tokenizer)
    with pytest.raises(TenantError, match=SECRET_ENV):
        _ask(client, tenant="alice")


@pytest.mark.parametrize("salt", ["", 7])
def test_an_empty_or_non_string_salt_is_an_error(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, salt: object
) -> None:
    client = _client(cache, tokenizer)
    with pytest.raises(TenantError, match="non-empty"):
        _ask(client, cache_salt=salt)


def test_an_engine_refuses_an_empty_salt_too() -> None:
    engine = FunctionEngine(lambda r: pytest.fail("sent"))  # type: ignore[arg-type,return-value]
    request = EngineRequest(prompt_token_ids=(1, 2, 3), cache_salt="")
    with pytest.raises(EngineRequestError, match="cache_salt=''"):
        engine.check_requests([request])


@pytest.mark.parametrize("tenant", ["", "\ud800", 42])
def test_bad_tenant_ids_are_typed_errors(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, tenant: object
) -> None:
    client = _client(cache, tokenizer, tenancy=Tenancy(secret=SECRET))
    with pytest.raises(TenantError):
        _ask(client, tenant=tenant)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(TenantError, match="16 bytes"):
        Tenancy(secret=b"short")


def test_the_log_never_holds_the_tenant_id_or_the_salt(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    tenancy = Tenancy(secret=SECRET)
    with _client(cache, tokenizer, tenancy=tenancy, log_path=log) as client:
        _ask(client, tenant="alice-the-tenant")
    text = log.read_text(encoding="utf-8")
    salt = tenancy.salt("alice-the-tenant")
    assert "alice-the-tenant" not in text and salt not in text
    assert salt_digest(salt) in text  # requests of one tenant can still be grouped
    assert "alice" not in repr(tenancy) and SECRET.decode() not in repr(tenancy)


def test_a_conversation_is_salted_for_its_tenant(tokenizer: Tokenizer) -> None:
    engine = FunctionEngine(lambda request: " ok")
    tenancy = Tenancy(secret=SECRET)
    client = Client(engine=engine, tokenizer=tokenizer, tenancy=tenancy)
    chat = Conversation(client, system="Be brief.", tenant="alice")
    chat.say("Hi")
    chat.side_call("Summarize.")
    assert [r.cache_salt for r in engine.requests] == [tenancy.salt("alice")] * 2
    with pytest.raises(TenantError):
        Conversation(client, system="Be brief.").say("Hi")


def test_the_tenants_page_snippets_run() -> None:
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "tenants.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.DOTALL | re.MULTILINE)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/tenants.md", "exec"), {})


def test_the_langchain_model_is_salted_per_tenant(tokenizer: Tokenizer) -> None:
    from promptkit.integrations.langchain import ChatPromptkit

    engine = FunctionEngine(lambda request: " ok")
    tenancy = Tenancy(secret=SECRET)
    client = Client(engine=engine, tokenizer=tokenizer, tenancy=tenancy)
    model = ChatPromptkit(client=client, tenant="alice", max_tokens=4)
    model.invoke("Hi")
    model.invoke("Hi", tenant="bob")  # per call
    assert [r.cache_salt for r in engine.requests] == [tenancy.salt("alice"), tenancy.salt("bob")]
    with pytest.raises(TenantError):
        ChatPromptkit(client=client, max_tokens=4).invoke("Hi")
