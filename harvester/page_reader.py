"""An answer's status, headers and body -> a Fetched page: records, totals, the next request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from harvester.answer_paths import MissingPath, PlanError, extract_records, read_total
from harvester.auth import TokenManager
from harvester.config import Config
from harvester.errors import PageFetchError, RecordsError, excerpt
from harvester.pagination import Answer, PageRequest, Planner
from harvester.read import NotJSON, collector_paused, cut_short, decode_json, encode_records
from harvester.retry import InvalidBody
from harvester.sink import Page


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page and what its answer said about the whole dataset."""

    page: Page
    total: int | None
    complete: bool
    next: PageRequest | None = None  # chain styles: the page after this one
    total_pages: int | None = None


class PageReader:
    """Reads a page's answer the same way on every attempt: no I/O, nothing retried here."""

    def __init__(self, config: Config, tokens: TokenManager) -> None:
        self._source = config.source
        self._total_spec = config.pagination.total or "unknown"
        self._total_pages_spec = config.pagination.total_pages
        self._unit = config.pagination.range_unit
        # Only for tokens.scrub: an excerpt of a body is masked before it is cut.
        self._tokens = tokens

    def totals(
        self, body: Any, headers: Mapping[str, str], *, strict: bool
    ) -> tuple[int | None, int | None]:
        """(total records, total pages) as this answer tells them; None where it does not."""
        try:
            total = read_total(self._total_spec, body, headers, self._unit)
            pages_spec = self._total_pages_spec
            pages = None if pages_spec is None else read_total(pages_spec, body, headers, "")
        except (MissingPath, PlanError):
            if strict:
                raise
            return None, None
        return total, pages

    # Reading a page makes thousands of dicts and lists, none in a cycle: see collector_paused.
    @collector_paused()
    def parse(
        self,
        planner: Planner,
        request: PageRequest,
        url: URL,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Fetched:
        content_type = headers.get("Content-Type", "")
        try:
            data: Any = decode_json(body, content_type)
        except NotJSON as exc:
            shown = excerpt(self._tokens.scrub(body))
            if cut_short(body, headers, exc):
                raise InvalidBody(f"body cut short ({exc})", body=shown, status=status) from None
            # A login page, plain text, a charset we cannot read: no retry turns it into JSON.
            raise PageFetchError(
                f"answered {excerpt(content_type, 80) or 'no Content-Type'}, not JSON ({exc})",
                page=request.index,
                url=str(url),
                status=status,
                body=shown,
            ) from None
        try:
            records = extract_records(data, self._source.records)
            # The first page must tell the total; later ones may keep quiet about it.
            total, total_pages = self.totals(data, headers, strict=request.index == 0)
            answer = Answer(status, headers, data, records, str(url))
            selected = planner.select(request, answer)
        except MissingPath as exc:
            raise RecordsError(str(exc), page=request.index, url=str(url), path=exc.path) from None
        except PlanError as exc:
            raise RecordsError(str(exc), page=request.index, url=str(url)) from None
        try:
            data_out = encode_records(selected.records)
        except NotJSON as exc:  # nested too deeply to write: the same on every attempt
            raise RecordsError(str(exc), page=request.index, url=str(url)) from None
        page = Page(request.index, data_out, len(selected.records), url=str(url))
        return Fetched(
            page,
            total=total,
            complete=selected.complete,
            next=selected.next,
            total_pages=total_pages,
        )
