"""The interactive API docs work on a machine without internet (issue 22): a real browser opens
`/docs` and `/redoc` while every request that is not to the gateway is refused, and finds the
operations listed. Chromium is Debian's (`make bootstrap` installs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Route, async_playwright

from crm_devstack import Suite

CHROMIUM = "/usr/bin/chromium"
_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def offline_browser(suite: Suite) -> AsyncIterator[tuple[BrowserContext, list[tuple[str, str]]]]:
    """A browser context that may reach only the gateway; the refused (resource type, URL) are collected."""
    refused: list[tuple[str, str]] = []

    async def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(suite.gateway_url):
            await route.continue_()
        else:
            refused.append((route.request.resource_type, route.request.url))
            await route.abort("internetdisconnected")

    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.route("**/*", only_the_gateway)
        yield context, refused
        await browser.close()


def _operations(suite: Suite) -> set[tuple[str, str]]:
    schema = httpx.get(f"{suite.gateway_url}/openapi.json", timeout=10).json()
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item if method in _METHODS}


async def test_swagger_ui_lists_every_operation_without_internet(
        suite: Suite, offline_browser: tuple[BrowserContext, list[tuple[str, str]]], tmp_path: Path) -> None:
    context, refused = offline_browser
    page = await context.new_page()
    await page.goto(f"{suite.gateway_url}/docs")
    await page.locator(".opblock").first.wait_for(timeout=30_000)

    # An operation with two tags is listed under both: compare the set of (method, path).
    listed = await page.locator(".opblock-summary").evaluate_all(
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').dataset.path])")
    assert {(method, path) for method, path in listed} == _operations(suite)
    assert ("GET", "/api/v1/me") in _operations(suite)
    await page.screenshot(path=tmp_path / "docs.png")
    assert refused == []


async def test_redoc_lists_the_operations_without_internet(
        suite: Suite, offline_browser: tuple[BrowserContext, list[tuple[str, str]]]) -> None:
    context, refused = offline_browser
    page = await context.new_page()
    await page.goto(f"{suite.gateway_url}/redoc")
    operations = page.locator("[data-section-id*='operation/']")
    await operations.first.wait_for(state="attached", timeout=30_000)

    # Section ids are tag/<tag>/operation/<operation id>; an operation with two tags is in both.
    section_ids = await operations.evaluate_all("sections => sections.map(s => s.dataset.sectionId)")
    assert len({section_id.rsplit("operation/", 1)[1] for section_id in section_ids}) == len(_operations(suite))
    # ReDoc's sidebar badge ("API docs by Redocly") is an image from its CDN, hard-coded in the
    # bundle; nothing the page needs (script, style, font, the document) comes from outside.
    assert all(kind == "image" for kind, _ in refused), refused
