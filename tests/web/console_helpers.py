"""Helpers for the console's HTTP tests: operators with passwords, and logging in as a browser
would (the login form's double-submit token, then the session cookie)."""

from __future__ import annotations

import re

import httpx

from fulema.core.db import Database
from fulema.operators import passwords, service

PASSWORD = "console-pass-2026"
_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def operator(db: Database, name: str, *roles: str) -> str:
    await service.create_operator(db, name=name, display_name=name, roles=list(roles),
                                  actor="test-admin")
    await passwords.set_password(db, name=name, password=PASSWORD, actor="test-admin")
    return name


async def login_form(http: httpx.AsyncClient) -> str:
    page = await http.get("/console/login")
    assert page.status_code == 200
    found = _TOKEN.search(page.text)
    assert found
    return found.group(1)


async def try_login(http: httpx.AsyncClient, name: str, password: str = PASSWORD,
                    next_: str = "/console/") -> httpx.Response:
    token = await login_form(http)
    return await http.post("/console/login", data={"name": name, "password": password,
                                                   "login_token": token, "next": next_})


async def log_in(http: httpx.AsyncClient, name: str) -> None:
    answer = await try_login(http, name)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)
