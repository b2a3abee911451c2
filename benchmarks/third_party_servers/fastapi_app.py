"""FastAPI with fastapi-pagination, written the way its documentation shows, for third_party.py.

Run by benchmarks/.third_party/venv/bin/python (FastAPI is not in harvester's .venv):
    python fastapi_app.py DATA.json PORT

GET /limit-offset  LimitOffsetPage: ?limit=&offset=, body items, total, limit, offset
GET /page          Page: ?page=&size=, body items, total, page, size, pages
GET /page-no-total Page with UseIncludeTotal(False): total and pages are null
GET /links         fastapi_pagination.links.Page: Page plus links.next (a relative URL)
Every size is capped at 100 by the library's defaults (le=100): more is a 422.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi_pagination import LimitOffsetPage, Page, add_pagination, paginate
from fastapi_pagination.customization import CustomizedPage, UseIncludeTotal
from fastapi_pagination.links import Page as LinksPage
from fastapi_pagination.utils import disable_installed_extensions_check
from pydantic import BaseModel


class Item(BaseModel):
    id: int
    seq: int
    name: str
    text: str
    big: int
    ratio: float
    dec: Decimal


NoTotalPage = CustomizedPage[Page[Item], UseIncludeTotal(False)]


def make_app(items: list[Item]) -> FastAPI:
    disable_installed_extensions_check()  # Django shares the venv; the items are a list
    app = FastAPI()

    @app.get("/limit-offset")
    def limit_offset() -> LimitOffsetPage[Item]:
        return paginate(items)

    @app.get("/page")
    def page() -> Page[Item]:
        return paginate(items)

    @app.get("/page-no-total")
    def page_no_total() -> NoTotalPage:
        return paginate(items)

    @app.get("/links")
    def links() -> LinksPage[Item]:
        return paginate(items)

    add_pagination(app)
    return app


def main() -> None:
    data, port = Path(sys.argv[1]), int(sys.argv[2])
    rows = json.loads(data.read_text(encoding="utf-8"), parse_float=Decimal)
    items = [Item(**{**row, "ratio": float(row["ratio"])}) for row in rows]
    uvicorn.run(make_app(items), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
