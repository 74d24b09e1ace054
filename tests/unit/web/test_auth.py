"""Only query-token holders see the pages: a bearer header, or the session cookie that ?token= or the login
form sets. The token never stays in a URL and the cookie is not the token."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from history.client import Warehouse
from web.auth import COOKIE, SESSION_SECONDS, WebAuth

from .conftest import BEARER, TOKEN, make_settings


@pytest.fixture
def client(database: Warehouse, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


@pytest.mark.parametrize("path", ["/artifacts", "/triage", "/overview", "/triage.csv", "/attestations/" + "a" * 64,
                                  f"/artifacts/sha256:{'b' * 64}", "/"])
def test_a_page_without_credentials_sends_the_browser_to_the_login_page(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_the_login_page_says_where_the_token_is(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    assert "secrets.json" in response.text and "query_token" in response.text
    assert "LINKED_ARTIFACTS_QUERY_TOKEN" in response.text


def test_a_bearer_header_opens_the_page(client: TestClient) -> None:
    assert client.get("/artifacts", headers=BEARER).status_code == 200


def test_a_wrong_bearer_header_does_not(client: TestClient) -> None:
    response = client.get("/artifacts", headers={"Authorization": "Bearer nope"}, follow_redirects=False)
    assert response.status_code == 303


def test_token_in_the_url_sets_a_strict_httponly_cookie_and_leaves_the_url(client: TestClient) -> None:
    response = client.get("/artifacts", params={"token": TOKEN, "q": "has:deployment"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/artifacts?q=has%3Adeployment"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie is a signed expiry, not the bearer token
    follow = client.get(response.headers["location"], follow_redirects=False)
    assert follow.status_code == 200


def test_a_wrong_token_in_the_url_is_refused_with_the_login_page(client: TestClient) -> None:
    response = client.get("/artifacts", params={"token": "guess"}, follow_redirects=False)
    assert response.status_code == 401
    assert "not the query token" in response.text
    assert "set-cookie" not in response.headers


def test_the_login_form_sets_the_session_and_goes_back_where_it_came_from(client: TestClient) -> None:
    response = client.post("/login", content=f"token={TOKEN}&next=%2Ftriage%3Fq%3Dis%3Aopen",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/triage?q=is:open"
    assert client.get("/triage", follow_redirects=False).status_code == 200


def test_the_login_form_refuses_a_wrong_token(client: TestClient) -> None:
    response = client.post("/login", content="token=guess", follow_redirects=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401
    assert "not the query token" in response.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    response = client.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
    assert response.headers["location"] == "/artifacts"


def test_logout_ends_the_session(client: TestClient) -> None:
    client.get("/artifacts", params={"token": TOKEN})
    assert client.get("/artifacts", follow_redirects=False).status_code == 200
    response = client.post("/logout", follow_redirects=False)
    assert response.status_code == 303 and f'{COOKIE}=""' in response.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/artifacts", follow_redirects=False).status_code == 303


def test_a_tampered_or_expired_session_is_refused(tmp_path: Path) -> None:
    auth = WebAuth(make_settings(tmp_path))
    value, _ = auth.session_cookie(now=1_000_000)
    assert auth.session_valid(value, now=1_000_000 + 10)
    assert not auth.session_valid(value, now=1_000_000 + SESSION_SECONDS + 1)
    expires, signature = value.split(".")
    assert not auth.session_valid(f"{int(expires) + 3600}.{signature}", now=1_000_000)
    assert not auth.session_valid(TOKEN, now=1_000_000)


def test_changing_the_token_ends_every_session(tmp_path: Path) -> None:
    value, _ = WebAuth(make_settings(tmp_path)).session_cookie(now=time.time())
    rotated = WebAuth(make_settings(tmp_path, query_token="another-token"))
    assert not rotated.session_valid(value)


def test_without_a_configured_token_the_pages_say_how_to_get_one(
    database: Warehouse, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(database, settings={"query_token": None})
    response = client.get("/artifacts")
    assert response.status_code == 503
    assert "No query token is configured" in response.text
    assert "linked-artifacts up" in response.text and "LINKED_ARTIFACTS_QUERY_TOKEN" in response.text


def test_the_live_endpoints_answer_401_json_instead_of_redirecting(client: TestClient) -> None:
    for path in ("/web/pulse", "/web/live/artifacts"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_the_stylesheet_and_script_need_no_token(client: TestClient) -> None:
    for path in ("/web/static/app.css", "/web/static/app.js"):
        assert client.get(path).status_code == 200


def test_pages_forbid_framing_caching_and_foreign_scripts(client: TestClient) -> None:
    response = client.get("/artifacts", headers=BEARER)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_pages_load_no_external_asset(client: TestClient) -> None:
    html = client.get("/artifacts", headers=BEARER).text
    for attribute in ("src=", "href="):
        for value in html.split(attribute)[1:]:
            target = value[1:].split(value[0], 1)[0]
            assert not target.startswith(("http:", "https:", "//")), target


def test_mounting_again_replaces_the_pages(database: Warehouse, tmp_path: Path) -> None:
    from tests.unit.web.conftest import build_app
    from web import mount_web

    settings = make_settings(tmp_path)
    api = build_app(database, settings)
    before = len(api.router.routes)
    mount_web(api, settings, warehouse_session=lambda: database, refresh_seconds=9)
    assert len(api.router.routes) == before
    assert 'data-refresh-ms="9000"' in TestClient(api).get("/artifacts", headers=BEARER).text
