"""The mock's Genesys Knowledge API over real HTTP: the platform's shapes (checked
against the official SDK's models), cursor paging, errors, who may read, and the
mock-only authoring controls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from tests.devmode.test_mock_genesys import PANEL_URL, MockServer, bearer, fragment_of, run_mock
from tests.devmode.test_mock_genesys_models import assert_model

DOC_REQUIRED = ["id", "title", "visible", "state", "dateModified", "knowledgeBase.id", "selfUri"]
PUBLISHED_REQUIRED = [*DOC_REQUIRED, "documentVersion.id", "datePublished"]
LISTING_REQUIRED = [f"entities[].{path}" for path in PUBLISHED_REQUIRED] + ["selfUri"]
VARIATIONS_REQUIRED = ["entities[].id", "entities[].body.blocks[].type", "entities[].document.id"]
ERROR_REQUIRED = ["message", "code", "status", "contextId"]
DRAFT_ID = "0f4d2c8a-6b1e-4c7a-9d3f-1a2b3c4d5e09"
SIM_ID = "0f4d2c8a-6b1e-4c7a-9d3f-1a2b3c4d5e04"
NEW_DOCUMENT = {
    "title": "Blocking spam calls",
    "category": "Calls & voicemail",
    "labels": ["spam"],
    "externalUrl": "https://help.brightwave.example/calls/spam",
    "blocks": [{"type": "Paragraph", "paragraph": {"blocks": [
        {"type": "Text", "text": {"text": "Turn on Call Shield in the app."}}]}}],
}


def admin_token(origin: str) -> str:
    config = MockGenesysConfig(public_origin=origin, panel_url=PANEL_URL)
    response = httpx.post(f"{origin}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(config.admin_client_id, config.admin_client_secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def user_token(origin: str) -> str:
    response = httpx.get(f"{origin}/oauth/authorize", params={
        "response_type": "token", "client_id": "assist-panel-dev", "redirect_uri": PANEL_URL,
        "state": "s"})
    return fragment_of(response)["access_token"]


class Reader:
    """GETs under the mock's knowledge base with one token."""

    def __init__(self, mock: MockServer, token: str) -> None:
        self.mock = mock
        self.base = f"/api/v2/knowledge/knowledgebases/{mock.config.knowledge_base_id}"
        self.http = httpx.Client(base_url=mock.origin, headers=bearer(token), timeout=5)

    def get(self, path: str, **params: Any) -> httpx.Response:
        url = path if path.startswith("/api/") else self.base + path
        return self.http.get(url, params=params or None)  # {} would drop the URI's query

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


@pytest.fixture(scope="module")
def reader(mock: MockServer) -> Reader:
    return Reader(mock, admin_token(mock.origin))


@pytest.fixture
def fresh() -> Iterator[tuple[MockServer, Reader]]:
    """A mock of its own, for tests that change its documents."""
    with run_mock() as running:
        yield running, Reader(running, admin_token(running.origin))


def cursor(uri: str, name: str) -> str:
    return parse_qs(urlsplit(uri).query)[name][0]


# Reading -----------------------------------------------------------------------


def test_knowledge_base_counts_its_published_documents(reader: Reader) -> None:
    body = reader.ok("")
    assert_model(body, "KnowledgeBase", ["id", "name", "articleCount", "coreLanguage", "selfUri"])
    assert body["articleCount"] == 8 and body["name"] == "Brightwave Help Center"


def test_listing_pages_forward_and_back_by_cursor(reader: Reader) -> None:
    pages = [reader.ok("/documents", pageSize=3)]
    while "nextUri" in pages[-1]:
        assert len(pages) < 4, "the cursor never ends"  # 8 documents, 3 a page
        assert cursor(pages[-1]["nextUri"], "pageSize") == "3"
        pages.append(reader.ok(pages[-1]["nextUri"]))
    for page in pages:
        assert_model(page, "KnowledgeDocumentResponseListing", LISTING_REQUIRED)
    assert [len(p["entities"]) for p in pages] == [3, 3, 2]
    assert "previousUri" not in pages[0] and "previousUri" in pages[1]
    ids = [e["id"] for p in pages for e in p["entities"]]
    assert ids == sorted(ids) and len(set(ids)) == 8  # the seed's creation order
    back = reader.ok(pages[1]["previousUri"])
    assert [e["id"] for e in back["entities"]] == ids[:3]
    before = reader.ok("/documents", pageSize=2, before=cursor(pages[2]["previousUri"], "before"))
    assert [e["id"] for e in before["entities"]] == ids[4:6]


def test_default_listing_has_25_a_page_and_only_published_documents(reader: Reader) -> None:
    page = reader.ok("/documents")
    assert len(page["entities"]) == 8 and not {"nextUri", "previousUri"} & set(page)
    assert {e["state"] for e in page["entities"]} == {"Published"}
    with_drafts = reader.ok("/documents", includeDrafts="true")
    assert_model(with_drafts, "KnowledgeDocumentResponseListing", ["entities[].id"])
    draft = with_drafts["entities"][-1]
    assert (draft["id"], draft["state"]) == (DRAFT_ID, "Draft")
    assert "documentVersion" not in draft and "datePublished" not in draft


def test_expand_fills_category_labels_and_variations(reader: Reader) -> None:
    plain = reader.ok("/documents", pageSize=1)["entities"][0]
    assert set(plain["category"]) == {"id", "selfUri"}
    assert all(set(label) == {"id", "selfUri"} for label in plain["labels"])
    page = reader.ok("/documents", pageSize=4, expand="category,labels,variations")
    assert_model(page, "KnowledgeDocumentResponseListing", [
        *LISTING_REQUIRED, "entities[].category.name", "entities[].labels[].name",
        "entities[].variations[].body.blocks[].type"])
    assert cursor(page["nextUri"], "expand") == "category,labels,variations"
    first = page["entities"][0]
    assert first["category"]["name"] == "Plans & roaming"
    assert [label["name"] for label in first["labels"]] == ["roaming", "travel"]


def test_a_document_and_its_variations(reader: Reader) -> None:
    document = reader.ok(f"/documents/{SIM_ID}", expand="category")
    assert_model(document, "KnowledgeDocumentResponse", [*PUBLISHED_REQUIRED, "category.name"])
    assert "externalUrl" not in document  # empty fields are left out, never null
    variations = reader.ok(f"/documents/{SIM_ID}/variations")
    assert_model(variations, "DocumentVariationResponseListing", VARIATIONS_REQUIRED)
    types = [b["type"] for b in variations["entities"][0]["body"]["blocks"]]
    assert types == ["Paragraph", "OrderedList", "Image", "Paragraph"]
    same = reader.ok(f"/documents/{SIM_ID}/variations", documentState="Published")
    assert same["entities"] == variations["entities"]


def test_a_draft_has_only_a_draft_variation(reader: Reader) -> None:
    assert reader.get(f"/documents/{DRAFT_ID}").status_code == 404
    draft = reader.ok(f"/documents/{DRAFT_ID}", state="Draft")
    assert_model(draft, "KnowledgeDocumentResponse", DOC_REQUIRED)
    assert reader.ok(f"/documents/{DRAFT_ID}/variations")["entities"] == []
    variations = reader.ok(f"/documents/{DRAFT_ID}/variations", documentState="Draft")
    assert_model(variations, "DocumentVariationResponseListing", VARIATIONS_REQUIRED)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/documents", {"pageSize": "0"}),
        ("/documents", {"pageSize": "201"}),
        ("/documents", {"pageSize": "ten"}),
        ("/documents", {"after": "not-a-cursor"}),
        ("/documents", {"before": "dmFyaWF0aW9uczow"}),  # a variations cursor
        ("/documents", {"after": "ZG9jdW1lbnRzOjM", "before": "ZG9jdW1lbnRzOjM"}),
        ("/documents", {"includeDrafts": "maybe"}),
        ("/documents", {"expand": "category,authors"}),
        (f"/documents/{SIM_ID}/variations", {"documentState": "Archived"}),
        (f"/documents/{SIM_ID}", {"state": "Latest"}),
    ],
)
def test_bad_parameters_are_400(reader: Reader, path: str, params: dict[str, str]) -> None:
    response = reader.get(path, **params)
    assert response.status_code == 400
    assert_model(response.json(), "ErrorBody", ERROR_REQUIRED)
    assert response.json()["code"] == "bad.request"


@pytest.mark.parametrize(
    "path",
    ["/api/v2/knowledge/knowledgebases/00000000-0000-0000-0000-000000000000/documents",
     "/documents/00000000-0000-0000-0000-000000000000",
     "/documents/00000000-0000-0000-0000-000000000000/variations"],
)
def test_unknown_knowledge_base_or_document_is_404(reader: Reader, path: str) -> None:
    response = reader.get(path)
    assert response.status_code == 404
    assert_model(response.json(), "ErrorBody", ERROR_REQUIRED)


# Who may read -----------------------------------------------------------------------


def test_without_a_token_is_401(mock: MockServer) -> None:
    response = httpx.get(f"{mock.origin}/api/v2/knowledge/knowledgebases/"
                         f"{mock.config.knowledge_base_id}/documents")
    assert response.status_code == 401
    assert_model(response.json(), "ErrorBody", ERROR_REQUIRED)


def test_a_user_token_with_the_knowledge_scope_may_read(mock: MockServer) -> None:
    reader = Reader(mock, user_token(mock.origin))
    assert len(reader.ok("/documents")["entities"]) == 8


def test_a_missing_permission_or_scope_is_403_naming_it() -> None:
    with run_mock(admin_permissions=("knowledge:knowledgebase:view",),
                  scopes=("user-basic-info",)) as restricted:
        admin = Reader(restricted, admin_token(restricted.origin))
        assert admin.get("").status_code == 200
        refused = admin.get("/documents")
        assert refused.status_code == 403
        assert_model(refused.json(), "ErrorBody", ERROR_REQUIRED)
        assert refused.json()["messageParams"] == {"permissions": "knowledge:document:view"}
        user = Reader(restricted, user_token(restricted.origin))
        scoped = user.get(f"/documents/{SIM_ID}/variations")
        assert scoped.status_code == 403 and scoped.json()["code"] == "missing.any.scopes"
        assert "knowledge:readonly" in scoped.json()["message"]


# Authoring (mock-only controls) ---------------------------------------------------------


def test_put_creates_then_replaces_a_published_document(
    fresh: tuple[MockServer, Reader],
) -> None:
    mock, reader = fresh
    url = f"{mock.origin}/mock/knowledge/documents/spam-calls"
    created = httpx.put(url, json=NEW_DOCUMENT)
    assert created.status_code == 201
    assert_model(created.json(), "KnowledgeDocumentResponse", PUBLISHED_REQUIRED)
    listed = reader.ok("/documents", expand="category")["entities"]
    assert listed[-1]["id"] == "spam-calls"
    assert listed[-1]["category"]["name"] == "Calls & voicemail"
    assert reader.ok("")["articleCount"] == 9

    replaced = httpx.put(url, json={**NEW_DOCUMENT, "title": "Blocking spam and scam calls"})
    assert replaced.status_code == 200
    before, after = created.json(), replaced.json()
    assert after["lastPublishedVersionNumber"] == before["lastPublishedVersionNumber"] + 1
    assert after["documentVersion"]["id"] != before["documentVersion"]["id"]
    assert after["dateModified"] > before["dateModified"]
    assert after["dateCreated"] == before["dateCreated"]
    assert reader.ok("/documents/spam-calls")["title"] == "Blocking spam and scam calls"


def test_unpublish_leaves_the_listings_and_delete_removes(
    fresh: tuple[MockServer, Reader],
) -> None:
    mock, reader = fresh
    controls = f"{mock.origin}/mock/knowledge/documents/{SIM_ID}"
    unpublished = httpx.post(f"{controls}/unpublish")
    assert unpublished.status_code == 200 and unpublished.json()["state"] == "Draft"
    assert SIM_ID not in {e["id"] for e in reader.ok("/documents")["entities"]}
    assert SIM_ID in {e["id"] for e in reader.ok("/documents", includeDrafts="true")["entities"]}
    assert reader.ok(f"/documents/{SIM_ID}/variations")["entities"] == []
    assert reader.ok("")["articleCount"] == 7

    assert httpx.delete(controls).status_code == 204
    assert reader.get(f"/documents/{SIM_ID}", state="Draft").status_code == 404
    for response in (httpx.delete(controls), httpx.post(f"{controls}/unpublish")):
        assert response.status_code == 404
        assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize(
    ("doc_id", "body", "message"),
    [
        ("a-doc", b"{not json", "JSON"),
        ("a-doc", json.dumps({"blocks": []}).encode(), "title"),
        ("a-doc", json.dumps({"title": "t", "blocks": [{"type": "Gif"}]}).encode(), "type"),
        ("a-doc", json.dumps({"title": "t", "blocks": [{"type": "Table"}]}).encode(), "table"),
        ("a-doc", json.dumps({"title": "t", "blocks": [], "body": "x"}).encode(), "body"),
        ("a-doc", json.dumps({"title": "t", "blocks": [], "visible": "yes"}).encode(), "visible"),
        ("a-doc", json.dumps({"title": "t", "blocks": [], "externalUrl": "ftp://x"}).encode(),
         "externalUrl"),
        ("-bad", json.dumps({"title": "t", "blocks": []}).encode(), "id"),
    ],
)
def test_put_refuses_bad_documents(
    mock: MockServer, doc_id: str, body: bytes, message: str
) -> None:
    response = httpx.put(f"{mock.origin}/mock/knowledge/documents/{doc_id}", content=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"} and message in response.json()["message"]


def test_requests_are_counted_per_kind_until_reset(fresh: tuple[MockServer, Reader]) -> None:
    mock, reader = fresh
    counts = f"{mock.origin}/mock/knowledge/requests"
    assert httpx.delete(counts).json()["variations"] == 0
    reader.ok("")
    reader.ok("/documents", pageSize=5)
    reader.ok(f"/documents/{SIM_ID}")
    reader.ok(f"/documents/{SIM_ID}/variations")
    reader.ok(f"/documents/{SIM_ID}/variations")
    assert httpx.get(counts).json() == {
        "knowledgeBases": 1, "listings": 1, "documents": 1, "variations": 2,
        "variationsByDocument": {SIM_ID: 2},
    }


# Seeds ----------------------------------------------------------------------------------


def test_a_seed_file_of_its_own(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"documents": [{"id": "only-one", **NEW_DOCUMENT}]}))
    with run_mock(knowledge_seed=seed, knowledge_base_id="kb-1") as mock:
        reader = Reader(mock, admin_token(mock.origin))
        assert reader.base.endswith("/kb-1")
        assert [e["id"] for e in reader.ok("/documents")["entities"]] == ["only-one"]


@pytest.mark.parametrize(
    "content",
    ['{"documents": [{"id": "x", "title": "t"}]}', '{"docs": []}', "not json",
     '{"documents": [{"id": "x", "title": "t", "blocks": [], "state": "Gone"}]}'],
)
def test_a_broken_seed_fails_when_the_app_is_built(tmp_path: Path, content: str) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(content)
    config = MockGenesysConfig(public_origin="http://127.0.0.1:1", panel_url=PANEL_URL,
                               knowledge_seed=seed)
    with pytest.raises(ValueError, match="seed"):
        create_mock_genesys_app(config)
