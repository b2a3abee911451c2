"""The demo's users -> orders pair, for parent -> child fan-out.

/users: offset pages with a total (like /items), `users` records {"id", "name"}.
/users/{id}/orders: page-number pages (page, page_size; {"results", "count", "total_pages",
"page"}, 404 past the last page, as /pages). User u has `orders_of(u)` orders: none for some,
several pages' worth for others (`orders_fixed` gives every user the same number). With
`missing_users_every` K, every K-th user (id % K == K - 1) answers 404, as a user deleted
between the two requests would; a user past the end answers 404 too.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from .pages import Answer, offset_page
from .params import int_param, non_negative_int
from .records import EncodedRecords
from .settings import DemoSettings
from .state import DemoState

_NOT_FOUND = orjson.dumps({"detail": "Not found."})


class _Users(EncodedRecords):
    def one(self, i: int) -> bytes:
        return orjson.dumps({"id": i, "name": f"user-{i:05d}"})


_USERS = _Users()


def orders_of(user: int, settings: DemoSettings) -> int:
    """How many orders user `user` has: 0 to orders_max, spread, unless orders_fixed."""
    if settings.orders_fixed is not None:
        return settings.orders_fixed
    return (user * 37) % (settings.orders_max + 1)


def expected_order(user: int, j: int) -> dict[str, int]:
    """Order `j` (0-based) of user `user`, as the demo serves it."""
    return {"id": user * 1000 + j, "user_id": user, "amount": (user * 31 + j * 7) % 500}


def users(request: web.Request, state: DemoState) -> Answer:
    """/users: offset pages with a total."""
    s = state.settings
    return offset_page(request.query, total=s.users, max_page_size=s.max_page_size, records=_USERS)


def orders(request: web.Request, state: DemoState) -> Answer:
    """/users/{id}/orders: page-number pages of one user's orders; 404 for an unknown user."""
    s = state.settings
    user = non_negative_int(request.match_info, "user", -1)
    missing = s.missing_users_every
    if user is None or not 0 <= user < s.users or (missing and user % missing == missing - 1):
        return Answer(404, _NOT_FOUND)
    page = int_param(request.query, "page", 1, least=1)
    size = min(int_param(request.query, "page_size", 100, least=1), s.max_page_size)
    count = orders_of(user, s)
    total_pages = max(1, -(-count // size))
    if page > total_pages:
        return Answer(404, _NOT_FOUND)
    start = (page - 1) * size
    results = [expected_order(user, j) for j in range(start, min(start + size, count))]
    body = {"results": results, "count": count, "total_pages": total_pages, "page": page}
    return Answer(200, orjson.dumps(body))
