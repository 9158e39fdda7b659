"""Getting the patient's data for a CDS call: prefetch first, the FHIR server for the rest.

Rules from the spec (cds-hooks.md §3): a missing prefetch key means "not satisfied" (fetch it
or fail with 412); `null` means "no data"; a searchset may be paginated (`link[next]`); errors
may come as OperationOutcome. The bearer token is sent only to the `fhirServer` origin, so a
`next` link pointing elsewhere is refused rather than followed with the token.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

FHIR_JSON = "application/fhir+json"


class DataUnavailable(Exception):
    """The data the service needs cannot be had: answer 412."""


class FhirReader:
    """Reads FHIR JSON from one server with one bearer token."""

    def __init__(self, client: httpx.AsyncClient, base: str | None, token: str | None, max_pages: int):
        self.client, self.token, self.max_pages = client, token, max_pages
        self.base = base.rstrip("/") + "/" if base else None

    def _check_origin(self, url: str) -> None:
        if self.base is None:
            raise DataUnavailable("the data is not in prefetch and no fhirServer was given")
        a, b = urlsplit(self.base), urlsplit(url)
        if (a.scheme, a.netloc) != (b.scheme, b.netloc):
            raise DataUnavailable("a paging link leaves the FHIR server; not followed")

    async def get(self, url: str) -> dict:
        """One GET of FHIR JSON; anything but a 200 resource is unavailability."""
        self._check_origin(url)
        headers = {"Accept": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self.client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise DataUnavailable(f"FHIR server unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise DataUnavailable(f"FHIR server answered {response.status_code} for {_what(url)}")
        try:
            doc = response.json()
        except ValueError:
            raise DataUnavailable(f"FHIR server sent no JSON for {_what(url)}") from None
        if not isinstance(doc, dict) or doc.get("resourceType") == "OperationOutcome":
            raise DataUnavailable(f"FHIR server sent an OperationOutcome for {_what(url)}")
        return doc

    async def query(self, relative: str) -> dict:
        """A read or a search relative to the server, every page of a searchset merged."""
        if self.base is None:
            raise DataUnavailable("the data is not in prefetch and no fhirServer was given")
        return await self.complete(await self.get(urljoin(self.base, relative)))

    async def complete(self, doc: dict) -> dict:
        """Follow a Bundle's `next` links and merge the pages' entries into one Bundle."""
        if doc.get("resourceType") != "Bundle":
            return doc
        entries = list(_entries(doc))
        page, pages = doc, 1
        while (nxt := _next_link(page)) is not None:
            if pages >= self.max_pages:
                raise DataUnavailable(f"more than {self.max_pages} pages for one query")
            page = await self.get(nxt)
            entries.extend(_entries(page))
            pages += 1
        return {**doc, "entry": entries, "link": [l for l in doc.get("link", []) if _relation(l) != "next"]}


def _what(url: str) -> str:
    """The resource type a URL asks for, for messages that must not carry the patient id."""
    path = urlsplit(url).path.rstrip("/").split("/")
    types = [p for p in path if p[:1].isupper()]
    return types[0] if types else "the request"


def _entries(bundle: dict) -> list:
    entries = bundle.get("entry")
    return entries if isinstance(entries, list) else []


def _relation(link: Any) -> str | None:
    return link.get("relation") if isinstance(link, dict) else None


def _next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if _relation(link) == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


async def gather(reader: FhirReader, queries: dict[str, str], prefetch: dict[str, Any]) -> dict[str, dict | None]:
    """Every key's data: from prefetch when given (and complete), else from the server."""

    async def one(key: str, query: str) -> dict | None:
        if key in prefetch:
            value = prefetch[key]
            if value is None:
                return None
            if isinstance(value, dict) and value.get("resourceType") not in (None, "OperationOutcome"):
                return await reader.complete(value)
        return await reader.query(query)

    values = await asyncio.gather(*(one(k, q) for k, q in queries.items()))
    return dict(zip(queries, values))


def as_bundle(found: dict[str, dict | None]) -> dict:
    """All resources found, as one collection Bundle for `engine.fhir.bundle_to_patient`."""
    entries: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for doc in found.values():
        if doc is None:
            continue
        items = _entries(doc) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]
        for entry in items:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") in (None, "OperationOutcome"):
                continue
            key = (str(res.get("resourceType")), str(res.get("id")))
            if res.get("id") is not None and key in seen:
                continue
            seen.add(key)
            entries.append({k: v for k, v in entry.items() if k in ("fullUrl", "resource")})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
