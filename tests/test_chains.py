"""Chain planners (cursor, link), partition windows, the RFC 8288 Link header, and page numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from multidict import CIMultiDict

from harvester.chains import (
    ChainPlanner,
    make_chain_planner,
    next_link,
    parse_link_header,
    partition_windows,
)
from harvester.config import PaginationConfig, PartitionConfig, SourceConfig, parse_config
from harvester.pagination import (
    Answer,
    PagePlanner,
    PageRecords,
    PageRequest,
    PlanError,
    make_planner,
)

SOURCE = "https://api.test/items"


def planner(source: str = SOURCE, **pagination: Any) -> ChainPlanner:
    """The chain planner for a `pagination` section (page_size 10 unless given)."""
    pagination.setdefault("page_size", 10)
    return make_chain_planner(PaginationConfig(**pagination), SourceConfig(url=source))


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def answer(
    body: Any = None,
    records: list[Any] | None = None,
    hdrs: CIMultiDict[str] | None = None,
    url: str = SOURCE,
) -> Answer:
    """A 200 answer; one record unless `records` says otherwise."""
    return Answer(
        200, hdrs or CIMultiDict(), body, [{"id": 1}] if records is None else records, url
    )


def next_of(chain: ChainPlanner, ans: Answer, request: PageRequest | None = None) -> PageRequest:
    """The next request after `request` (the first of chain 0 by default); it must exist."""
    selected = chain.select(request or chain.first(0), ans)
    assert selected.next is not None
    return selected.next


def cursor_planner(**pagination: Any) -> ChainPlanner:
    return planner(style="cursor", **pagination)


def link_planner(source: str = SOURCE, **pagination: Any) -> ChainPlanner:
    return planner(source, style="link", **pagination)


def link(target: str, rel: str = "next") -> CIMultiDict[str]:
    return headers(("Link", f'<{target}>; rel="{rel}"'))


def windows(start: int | str, end: int | str, parts: int) -> list[tuple[str, str]]:
    partition = PartitionConfig(param_from="from", param_to="to", start=start, end=end, parts=parts)
    return [(w["from"], w["to"]) for w in partition_windows(partition)]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- cursor: next_cursor ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "body", "expected"),
    [
        ("body:next_cursor", {"next_cursor": "abc"}, "abc"),
        ("body:meta.page.next", {"meta": {"page": {"next": "x-2"}}}, "x-2"),
        ("body:paging.0", {"paging": ["c1", "c2"]}, "c1"),
        ("body:next", {"next": 42}, "42"),
        ("body:next", {"next": 0}, "0"),
        ("body:next", {"next": 2.5}, "2.5"),
    ],
)
def test_cursor_from_the_body(spec: str, body: Any, expected: str) -> None:
    chain = cursor_planner(next_cursor=spec)
    assert next_of(chain, answer(body)).params["cursor"] == expected


@pytest.mark.parametrize("name", ["X-Next-Cursor", "x-next-cursor", "X-NEXT-CURSOR"])
def test_cursor_from_a_header_is_case_insensitive(name: str) -> None:
    chain = cursor_planner(next_cursor="header:X-Next-Cursor")
    ans = answer({}, hdrs=headers((name, "tok-2")))
    assert next_of(chain, ans).params["cursor"] == "tok-2"


@pytest.mark.parametrize(
    "body",
    [{}, {"next_cursor": None}, {"next_cursor": ""}, {"other": "x"}, [{"id": 1}], None],
)
def test_no_cursor_in_the_body_ends_the_chain(body: Any) -> None:
    chain = cursor_planner(next_cursor="body:next_cursor")
    selected = chain.select(chain.first(0), answer(body))
    assert selected == PageRecords([{"id": 1}], next=None)


def test_a_dotted_path_that_stops_short_ends_the_chain() -> None:
    chain = cursor_planner(next_cursor="body:meta.next")
    assert chain.select(chain.first(0), answer({"meta": "flat"})).next is None


def test_no_cursor_header_ends_the_chain() -> None:
    chain = cursor_planner(next_cursor="header:X-Next-Cursor")
    ans = answer({"next_cursor": "in-the-body"}, hdrs=headers(("X-Other", "x")))
    assert chain.select(chain.first(0), ans).next is None


@pytest.mark.parametrize("cursor", [{"after": "x"}, ["x"], True, False])
def test_a_cursor_that_is_not_text_or_a_number_is_refused(cursor: Any) -> None:
    chain = cursor_planner(next_cursor="body:next")
    with pytest.raises(PlanError, match="not a string or number"):
        chain.select(chain.first(0), answer({"next": cursor}))


def test_the_next_cursor_request() -> None:
    chain = cursor_planner(next_cursor="body:next", page_size=25, limit_param="per_page")
    first = chain.first(0)
    after = next_of(chain, answer({"next": "c2"}), first)
    assert after == PageRequest(
        index=1, size=25, params={"per_page": "25", "cursor": "c2"}, chain=0, key="c2"
    )
    then = next_of(chain, answer({"next": "c3"}), after)
    assert (then.index, then.key, then.params) == (2, "c3", {"per_page": "25", "cursor": "c3"})
    assert then.url is None and then.send_token


def test_the_cursor_param_is_configurable() -> None:
    chain = cursor_planner(next_cursor="body:next", cursor_param="page_token")
    assert next_of(chain, answer({"next": "t"})).params == {"limit": "10", "page_token": "t"}


def test_the_next_cursor_request_keeps_its_window() -> None:
    partition = PartitionConfig(param_from="since", param_to="until", start=0, end=300, parts=3)
    chain = cursor_planner(next_cursor="body:next", partition=partition)
    second = chain.first(1)
    after = next_of(chain, answer({"next": "c9"}), second)
    assert after.chain == 1
    assert after.index == 1
    assert after.params == {"limit": "10", "since": "100", "until": "200", "cursor": "c9"}


@pytest.mark.parametrize(
    ("value", "inside"),
    [(5, True), ("5", True), ("-5", False), ("¹", False), ("-¹", False), ("--5", False)],
)
def test_a_window_key_written_as_text_is_read_as_ascii_digits_only(
    value: Any, inside: bool
) -> None:
    # "¹".isdigit() holds, but int() refuses it: such a key is outside, never a crash.
    partition = PartitionConfig(
        param_from="since", param_to="until", start=0, end=300, parts=3, key="id"
    )
    chain = cursor_planner(next_cursor="body:next", partition=partition)
    ans = answer({"next": "c9"}, records=[{"id": value}])
    if inside:
        assert chain.select(chain.first(0), ans).records == [{"id": value}]
    else:
        with pytest.raises(PlanError, match="outside window 0"):
            chain.select(chain.first(0), ans)


# --- cursor: cursor_from_record --------------------------------------------------------------


def test_cursor_from_the_last_record() -> None:
    chain = cursor_planner(cursor_from_record="id", cursor_param="after")
    ans = answer(records=[{"id": 40}, {"id": 41}, {"id": 42}])
    after = next_of(chain, ans)
    assert (after.params["after"], after.key, after.index) == ("42", "42", 1)


def test_cursor_from_a_text_field_of_the_last_record() -> None:
    chain = cursor_planner(cursor_from_record="uid")
    ans = answer(records=[{"uid": "a"}, {"uid": "b"}])
    assert next_of(chain, ans).params["cursor"] == "b"


@pytest.mark.parametrize("last", [{"name": "no id"}, {"id": None}, "not a mapping", 7])
def test_a_last_record_without_the_field_is_refused(last: Any) -> None:
    chain = cursor_planner(cursor_from_record="id")
    with pytest.raises(PlanError, match="'id'"):
        chain.select(chain.first(0), answer(records=[{"id": 1}, last]))


def test_cursor_from_record_reads_the_last_record_not_the_body() -> None:
    chain = cursor_planner(cursor_from_record="id")
    ans = answer({"id": 999}, records=[{"id": 5}])
    assert next_of(chain, ans).params["cursor"] == "5"


# --- an empty page ends a chain unless it carries a new continuation -------------------------


@pytest.mark.parametrize(
    ("pagination", "body", "hdrs"),
    [
        ({"style": "cursor", "next_cursor": "body:next"}, {"next": "more"}, ()),
        ({"style": "cursor", "next_cursor": "header:X-Next"}, {}, (("X-Next", "more"),)),
        ({"style": "cursor", "cursor_from_record": "id"}, {}, ()),
        ({"style": "link"}, {}, (("Link", f'<{SOURCE}?page=2>; rel="next"'),)),
        ({"style": "link", "next_url": "body:next"}, {"next": f"{SOURCE}?page=2"}, ()),
    ],
)
def test_an_empty_page_with_a_new_continuation_goes_on(
    pagination: dict[str, Any], body: Any, hdrs: tuple[tuple[str, str], ...]
) -> None:
    chain = planner(**pagination)
    selected = chain.select(chain.first(0), answer(body, records=[], hdrs=headers(*hdrs)))
    if pagination.get("cursor_from_record"):  # no record, so no cursor: the end
        assert selected == PageRecords([], next=None)
    else:
        assert selected.records == [] and selected.next is not None
        assert selected.next.index == 1


@pytest.mark.parametrize(
    ("pagination", "body", "hdrs"),
    [
        ({"style": "cursor", "next_cursor": "body:next"}, {"next": None}, ()),
        ({"style": "cursor", "next_cursor": "header:X-Next"}, {}, ()),
        ({"style": "link"}, {}, ()),
        ({"style": "link", "next_url": "body:next"}, {"next": ""}, ()),
    ],
)
def test_an_empty_page_without_a_continuation_ends_the_chain(
    pagination: dict[str, Any], body: Any, hdrs: tuple[tuple[str, str], ...]
) -> None:
    chain = planner(**pagination)
    selected = chain.select(chain.first(0), answer(body, records=[], hdrs=headers(*hdrs)))
    assert selected == PageRecords([], next=None)


def test_an_empty_page_naming_the_cursor_just_sent_ends_the_chain() -> None:
    chain = planner(style="cursor", next_cursor="body:next")
    sent = next_of(chain, answer({"next": "c1"}))
    selected = chain.select(sent, answer({"next": "c1"}, records=[]))
    assert selected == PageRecords([], next=None)


# --- link: the Link header -------------------------------------------------------------------


def test_link_from_the_link_header() -> None:
    chain = link_planner()
    after = next_of(chain, answer(hdrs=link(f"{SOURCE}?page=2")))
    assert after == PageRequest(
        index=1,
        size=10,
        params={},
        url=f"{SOURCE}?page=2",
        send_token=True,
        chain=0,
        key=f"{SOURCE}?page=2",
    )


def test_the_link_header_name_is_case_insensitive() -> None:
    chain = link_planner()
    hdrs = headers(("link", f'<{SOURCE}?page=2>; rel="next"'))
    assert next_of(chain, answer(hdrs=hdrs)).url == f"{SOURCE}?page=2"


@pytest.mark.parametrize(
    ("target", "base", "expected"),
    [
        ("?page=2", "https://api.test/items?page=1", "https://api.test/items?page=2"),
        ("/items?page=2", "https://api.test/v1/items", "https://api.test/items?page=2"),
        ("page/2", "https://api.test/items/", "https://api.test/items/page/2"),
        ("//api.test/items?p=2", "https://api.test/items", "https://api.test/items?p=2"),
        (
            "https://api.test/other?x=1",
            "https://api.test/items?page=1",
            "https://api.test/other?x=1",
        ),
    ],
)
def test_link_targets_resolve_against_the_request_url(
    target: str, base: str, expected: str
) -> None:
    chain = link_planner()
    after = next_of(chain, answer(hdrs=link(target), url=base))
    assert (after.url, after.key, after.send_token) == (expected, expected, True)


def test_a_link_header_without_next_ends_the_chain() -> None:
    chain = link_planner()
    hdrs = headers(("Link", f'<{SOURCE}?page=1>; rel="prev", <{SOURCE}?page=9>; rel="last"'))
    assert chain.select(chain.first(0), answer(hdrs=hdrs)).next is None


def test_no_link_header_ends_the_chain() -> None:
    chain = link_planner()
    assert chain.select(chain.first(0), answer({"next": f"{SOURCE}?page=2"})).next is None


def test_the_next_link_request_follows_its_chain() -> None:
    partition = PartitionConfig(param_from="from", param_to="to", start=0, end=20, parts=2)
    chain = link_planner(partition=partition)
    first = chain.first(1)
    after = next_of(chain, answer(hdrs=link("?from=10&to=20&page=2")), first)
    then = next_of(chain, answer(hdrs=link("?from=10&to=20&page=3"), url=after.url or ""), after)
    assert (after.index, after.chain, after.params) == (1, 1, {})
    assert (then.index, then.chain, then.params) == (2, 1, {})
    assert then.url == f"{SOURCE}?from=10&to=20&page=3"


def test_a_next_link_in_a_second_link_header_line() -> None:
    chain = link_planner()
    hdrs = headers(
        ("Link", f'<{SOURCE}?page=1>; rel="prev"'), ("Link", f'<{SOURCE}?page=3>; rel="next"')
    )
    assert next_of(chain, answer(hdrs=hdrs)).url == f"{SOURCE}?page=3"


# --- link: next_url in the body --------------------------------------------------------------


def test_link_from_the_body() -> None:
    chain = link_planner(next_url="body:next")
    body = {"count": 30, "next": f"{SOURCE}?page=2", "previous": None, "results": []}
    after = next_of(chain, answer(body))
    assert (after.url, after.params, after.index, after.send_token) == (
        f"{SOURCE}?page=2",
        {},
        1,
        True,
    )


def test_a_relative_link_in_the_body_resolves_against_the_request_url() -> None:
    chain = link_planner(next_url="body:links.next")
    ans = answer({"links": {"next": "?page=3"}}, url=f"{SOURCE}?page=2")
    assert next_of(chain, ans).url == f"{SOURCE}?page=3"


@pytest.mark.parametrize("body", [{"next": None}, {"next": ""}, {}, {"links": {}}])
def test_no_link_in_the_body_ends_the_chain(body: Any) -> None:
    chain = link_planner(next_url="body:next")
    hdrs = link(f"{SOURCE}?page=2")  # ignored: the config says the body names the next page
    assert chain.select(chain.first(0), answer(body, hdrs=hdrs)).next is None


@pytest.mark.parametrize("value", [2, 2.0, True, ["https://api.test/items?page=2"], {"a": 1}])
def test_a_next_url_that_is_not_a_string_is_refused(value: Any) -> None:
    chain = link_planner(next_url="body:next")
    with pytest.raises(PlanError, match="not a string"):
        chain.select(chain.first(0), answer({"next": value}))


@pytest.mark.parametrize(
    "target", ["ftp://api.test/items?page=2", "file:///etc/passwd", "javascript:alert(1)"]
)
def test_a_next_url_that_is_not_http_is_refused(target: str) -> None:
    for chain, ans in (
        (link_planner(), answer(hdrs=link(target))),
        (link_planner(next_url="body:next"), answer({"next": target})),
    ):
        with pytest.raises(PlanError, match="not http"):
            chain.select(chain.first(0), ans)


@pytest.mark.parametrize("target", ["https://api.test:99999/items", "https://api.test:x/items"])
def test_a_next_url_with_a_bad_port_is_refused(target: str) -> None:
    chain = link_planner()
    with pytest.raises(PlanError):
        chain.select(chain.first(0), answer(hdrs=link(target)))


# --- link: which hosts get the token ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "same"),
    [
        ("https://api.test/items", "https://api.test/items?page=2", True),
        ("https://api.test/items", "https://API.TEST/items?page=2", True),
        ("http://127.0.0.1:8765/items", "http://127.0.0.1:8765/items?p=2", True),
        ("https://api.test/items", "https://other.test/items?page=2", False),
        ("https://api.test/items", "https://sub.api.test/items?page=2", False),
        ("https://api.test/items", "http://api.test/items?page=2", False),
        ("https://api.test/items", "https://api.test:8443/items?page=2", False),
        ("http://127.0.0.1:8765/items", "http://127.0.0.1:8766/items", False),
        ("http://127.0.0.1:8765/items", "http://localhost:8765/items", False),
        ("https://api.test/items", "https://api.test.evil.test/items", False),
    ],
)
def test_the_token_goes_only_to_the_source_origin(source: str, target: str, same: bool) -> None:
    for chain, ans in (
        (link_planner(source), answer(hdrs=link(target), url=source)),
        (link_planner(source, next_url="body:next"), answer({"next": target}, url=source)),
    ):
        after = next_of(chain, ans)
        assert (after.url, after.send_token) == (target, same)


@pytest.mark.parametrize("target", ["https://other.test/items?p=2", "https://api.test:8443/x"])
def test_allow_cross_host_sends_the_token_anywhere(target: str) -> None:
    chain = link_planner(allow_cross_host=True)
    assert next_of(chain, answer(hdrs=link(target))).send_token is True


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("https://api.test/items", "https://api.test:443/items?page=2"),
        ("https://api.test:443/items", "https://api.test/items?page=2"),
        ("http://api.test/items", "http://api.test:80/items?page=2"),
    ],
)
def test_an_explicit_default_port_is_the_same_origin(source: str, target: str) -> None:
    chain = link_planner(source)
    assert next_of(chain, answer(hdrs=link(target), url=source)).send_token is True


# --- first requests and chains ---------------------------------------------------------------


def test_one_chain_without_a_partition() -> None:
    chain = cursor_planner(next_cursor="body:next", page_size=50)
    assert chain.chains == 1
    assert chain.first(0) == PageRequest(index=0, size=50, params={"limit": "50"}, chain=0)
    assert chain.is_past_end(404, chain.first(0)) is False


@pytest.mark.parametrize("style", ["cursor", "link"])
def test_each_window_is_a_chain(style: str) -> None:
    partition = PartitionConfig(param_from="id_gte", param_to="id_lt", start=0, end=300, parts=3)
    extra = {"next_cursor": "body:next"} if style == "cursor" else {}
    chain = planner(style=style, page_size=100, limit_param="n", partition=partition, **extra)
    assert chain.chains == 3
    firsts = [chain.first(k) for k in range(chain.chains)]
    assert [r.params for r in firsts] == [
        {"n": "100", "id_gte": "0", "id_lt": "100"},
        {"n": "100", "id_gte": "100", "id_lt": "200"},
        {"n": "100", "id_gte": "200", "id_lt": "300"},
    ]
    assert [(r.index, r.chain, r.url, r.key) for r in firsts] == [
        (0, 0, None, None),
        (0, 1, None, None),
        (0, 2, None, None),
    ]


def test_time_windows_are_chains() -> None:
    partition = PartitionConfig(
        param_from="since",
        param_to="until",
        start="2024-01-01T00:00:00Z",
        end="2024-01-02T00:00:00Z",
        parts=2,
    )
    chain = cursor_planner(cursor_from_record="id", partition=partition)
    assert chain.chains == 2
    assert chain.first(1).params == {
        "limit": "10",
        "since": "2024-01-01T12:00:00Z",
        "until": "2024-01-02T00:00:00Z",
    }


NEXT_2 = "<https://a.test/2>; rel=next"


# --- the Link header -------------------------------------------------------------------------


def test_parse_link_header_several_links() -> None:
    value = (
        '<https://api.test/items?page=1>; rel="first", '
        '<https://api.test/items?page=3>; rel="next", '
        "<https://api.test/items?page=9>; rel=last"
    )
    assert parse_link_header(value) == [
        ("https://api.test/items?page=1", {"rel": "first"}),
        ("https://api.test/items?page=3", {"rel": "next"}),
        ("https://api.test/items?page=9", {"rel": "last"}),
    ]
    assert next_link(value) == "https://api.test/items?page=3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('<https://a.test/2>; rel="next"', "https://a.test/2"),
        ("<https://a.test/2>; rel=next", "https://a.test/2"),
        ('<https://a.test/2>; rel="next last"', "https://a.test/2"),
        ('<https://a.test/2>; rel="last next"', "https://a.test/2"),
        ('<https://a.test/2>; REL="Next"', "https://a.test/2"),
        ("<https://a.test/2>; Rel=NEXT", "https://a.test/2"),
        ('<https://a.test/2>;rel="next"', "https://a.test/2"),
        ('  <https://a.test/2>  ;   rel = "next"  ', "https://a.test/2"),
        ("<https://a.test/2> ; rel = next , <https://a.test/9> ; rel = last", "https://a.test/2"),
        ('<https://a.test/?ids=1,2,3&x=y>; rel="next"', "https://a.test/?ids=1,2,3&x=y"),
        ('<https://a.test/?a=1;b=2>; rel="next"', "https://a.test/?a=1;b=2"),
        ('<https://a.test/1>; rel="prev", <https://a.test/3>; rel="next"', "https://a.test/3"),
        ('</items?page=2>; rel="next"', "/items?page=2"),
        ('<https://a.test/2>; type="application/json"; rel="next"', "https://a.test/2"),
        ('<https://a.test/2>; rel="next"; title="Page 2"', "https://a.test/2"),
        ("<https://a.test/2>; title*=UTF-8'de'n%c3%a4chste; rel=\"next\"", "https://a.test/2"),
        ('<https://a.test/2>; anchor="#x"; rel=next', "https://a.test/2"),
    ],
)
def test_next_link(value: str, expected: str) -> None:
    assert next_link(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # quoted strings hide the separators and a rel that is not the link's own
        ('<https://a.test/1>; title="a; rel=next, b"; rel="prev", ' + NEXT_2, 2),
        ('<https://a.test/1>; title="x, <https://evil.test/>; rel=next", ' + NEXT_2, 2),
        ('<https://a.test/1>; title="say \\"rel=next\\", ok"; rel=prev, ' + NEXT_2, 2),
        ('<https://a.test/1>; title="\\\\"; rel="next"', 1),
    ],
)
def test_next_link_reads_quoted_strings_whole(value: str, expected: int) -> None:
    assert next_link(value) == f"https://a.test/{expected}"


def test_parse_link_header_unescapes_quoted_strings() -> None:
    value = r'<https://a.test/2>; title="say \"hi\"; then, go"; rel="next"'
    assert parse_link_header(value) == [
        ("https://a.test/2", {"title": 'say "hi"; then, go', "rel": "next"})
    ]


def test_parse_link_header_lower_cases_names_and_keeps_the_first_of_each() -> None:
    value = '<https://a.test/2>; REL="next"; rel="prev"; Title=X'
    assert parse_link_header(value) == [("https://a.test/2", {"rel": "next", "title": "X"})]
    assert next_link(value) == "https://a.test/2"


def test_the_first_next_link_wins() -> None:
    value = '<https://a.test/first>; rel="next", <https://a.test/second>; rel="next"'
    assert next_link(value) == "https://a.test/first"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '<https://a.test/1>; rel="prev", <https://a.test/9>; rel="last"',
        '<https://a.test/2>; rel="nextpage"',
        '<https://a.test/2>; rel="next-page"',
        '<https://a.test/2>; title="next"',
        '<https://a.test/2>; title="rel=next"',
        "<https://a.test/2>",
        "https://a.test/2; rel=next",
    ],
)
def test_no_next_link(value: str) -> None:
    assert next_link(value) is None


# --- partition windows: integers -------------------------------------------------------------


def assert_contiguous(bounds: list[tuple[str, str]], start: str, end: str) -> None:
    assert bounds[0][0] == start
    assert bounds[-1][1] == end
    for (_, high), (low, _) in zip(bounds, bounds[1:], strict=False):
        assert high == low


def test_integer_windows() -> None:
    assert windows(0, 20000, 8) == [
        ("0", "2500"),
        ("2500", "5000"),
        ("5000", "7500"),
        ("7500", "10000"),
        ("10000", "12500"),
        ("12500", "15000"),
        ("15000", "17500"),
        ("17500", "20000"),
    ]


@pytest.mark.parametrize(
    ("start", "end", "parts"),
    [(0, 10, 3), (0, 7, 7), (1, 100, 6), (-10, 10, 3), (5, 6, 1), (0, 1_000_003, 97), (3, 20, 4)],
)
def test_uneven_integer_windows_cover_the_span_exactly(start: int, end: int, parts: int) -> None:
    bounds = windows(start, end, parts)
    assert len(bounds) == parts
    assert_contiguous(bounds, str(start), str(end))
    covered = [n for low, high in bounds for n in range(int(low), int(high))]
    assert covered == list(range(start, end))  # no gap, no overlap
    sizes = [int(high) - int(low) for low, high in bounds]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_integer_windows_of_0_to_10_in_3() -> None:
    assert windows(0, 10, 3) == [("0", "3"), ("3", "6"), ("6", "10")]


# --- partition windows: timestamps -----------------------------------------------------------


def test_utc_time_windows() -> None:
    assert windows("2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z", 4) == [
        ("2024-01-01T00:00:00Z", "2024-01-01T02:00:00Z"),
        ("2024-01-01T02:00:00Z", "2024-01-01T04:00:00Z"),
        ("2024-01-01T04:00:00Z", "2024-01-01T06:00:00Z"),
        ("2024-01-01T06:00:00Z", "2024-01-01T08:00:00Z"),
    ]


def test_time_windows_keep_the_offset() -> None:
    start, end = "2024-01-01T02:00:00+02:00", "2024-01-01T10:00:00+02:00"
    bounds = windows(start, end, 4)
    assert bounds == [
        ("2024-01-01T02:00:00+02:00", "2024-01-01T04:00:00+02:00"),
        ("2024-01-01T04:00:00+02:00", "2024-01-01T06:00:00+02:00"),
        ("2024-01-01T06:00:00+02:00", "2024-01-01T08:00:00+02:00"),
        ("2024-01-01T08:00:00+02:00", "2024-01-01T10:00:00+02:00"),
    ]
    # the same instants as the UTC windows
    utc = windows("2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z", 4)
    assert [(instant(a), instant(b)) for a, b in bounds] == [
        (instant(a), instant(b)) for a, b in utc
    ]


@pytest.mark.parametrize(
    ("start", "end", "parts"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:10Z", 3),
        ("2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", 7),
        ("2024-03-01T00:00:00-05:00", "2024-03-02T00:00:00-05:00", 5),
        ("2024-01-01T00:00:00+05:30", "2024-01-01T01:00:00+05:30", 11),
        ("2023-12-31T22:00:00-02:00", "2024-01-01T02:00:00Z", 3),
        ("2024-01-01T00:00:00+02:00", "2024-01-01T12:00:00-03:00", 4),
        ("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z", 3),
    ],
)
def test_time_windows_are_contiguous_from_start_to_end(start: str, end: str, parts: int) -> None:
    bounds = windows(start, end, parts)
    assert len(bounds) == parts
    moments = [instant(low) for low, _ in bounds] + [instant(bounds[-1][1])]
    assert moments[0] == instant(start)
    assert moments[-1] == instant(end)
    assert moments == sorted(set(moments))  # strictly increasing: no empty or reversed window
    for (_, high), (low, _) in zip(bounds, bounds[1:], strict=False):
        assert high == low


def test_time_windows_in_a_zone_are_written_in_that_zone() -> None:
    bounds = windows("2024-03-01T00:00:00-05:00", "2024-03-02T00:00:00-05:00", 4)
    assert all(b.endswith("-05:00") for window in bounds for b in window)
    assert bounds[1][0] == "2024-03-01T06:00:00-05:00"


def test_time_windows_with_a_z_on_either_bound_are_written_in_utc() -> None:
    bounds = windows("2024-01-01T02:00:00+02:00", "2024-01-01T08:00:00Z", 2)
    assert bounds == [
        ("2024-01-01T00:00:00Z", "2024-01-01T04:00:00Z"),
        ("2024-01-01T04:00:00Z", "2024-01-01T08:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-01-01T00:00:00.500000Z", "2024-01-01T00:00:10Z"),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:10.500000Z"),
        ("1969-12-31T23:59:59.500000Z", "1970-01-01T00:00:10Z"),
    ],
)
def test_time_windows_keep_fractional_bounds(start: str, end: str) -> None:
    bounds = windows(start, end, 2)
    assert instant(bounds[0][0]) == instant(start)
    assert instant(bounds[-1][1]) == instant(end)


# --- PagePlanner -----------------------------------------------------------------------------


def page_planner(first_page: int = 1, page_size: int = 50, open_end: bool = False) -> PagePlanner:
    return PagePlanner(
        page_size=page_size,
        first_page=first_page,
        page_param="page",
        page_size_param="page_size",
        open_end=open_end,
    )


@pytest.mark.parametrize(("first_page", "pages"), [(1, ["1", "2", "3"]), (0, ["0", "1", "2"])])
def test_page_request_params(first_page: int, pages: list[str]) -> None:
    plan = page_planner(first_page=first_page)
    requests = [plan.request(i) for i in range(3)]
    assert [r.params for r in requests] == [{"page": p, "page_size": "50"} for p in pages]
    assert [(r.index, r.first, r.size) for r in requests] == [(0, 0, 50), (1, 50, 50), (2, 100, 50)]


def test_page_param_names_are_configurable() -> None:
    plan = PagePlanner(page_size=20, first_page=0, page_param="p", page_size_param="per_page")
    assert plan.request(4).params == {"p": "4", "per_page": "20"}


@pytest.mark.parametrize(("total", "pages"), [(0, 0), (1, 1), (50, 1), (51, 2), (20000, 400)])
def test_page_count(total: int, pages: int) -> None:
    assert page_planner().page_count(total) == pages


def test_page_with_page_size() -> None:
    plan = page_planner(first_page=0).with_page_size(10)
    assert plan.request(3).params == {"page": "3", "page_size": "10"}
    assert plan.page_count(25) == 3


def test_page_select() -> None:
    plan = page_planner(page_size=3)
    request = plan.request(1)
    records = [{"id": 3}, {"id": 4}]
    ans = Answer(200, CIMultiDict(), {"results": records}, records, SOURCE)
    assert plan.select(request, ans) == PageRecords(records)


def test_page_select_refuses_more_than_page_size() -> None:
    plan = page_planner(page_size=3)
    records = [{"id": n} for n in range(4)]
    ans = Answer(200, CIMultiDict(), records, records, SOURCE)
    with pytest.raises(PlanError, match="asked for 3 records, got 4"):
        plan.select(plan.request(0), ans)


@pytest.mark.parametrize(
    ("open_end", "index", "status", "past"),
    [
        (True, 1, 404, True),
        (True, 7, 404, True),
        (True, 0, 404, False),
        (True, 1, 416, False),
        (True, 1, 400, False),
        (True, 1, 200, False),
        (False, 1, 404, False),
        (False, 0, 404, False),
    ],
)
def test_page_past_the_end(open_end: bool, index: int, status: int, past: bool) -> None:
    plan = page_planner(open_end=open_end)
    assert plan.is_past_end(status, plan.request(index)) is past


@pytest.mark.parametrize(
    ("pagination", "open_end"),
    [
        ({"style": "page"}, False),
        ({"style": "page", "total": "unknown"}, True),
        ({"style": "page", "total_pages": "body:pages"}, False),
        ({"style": "page", "total": "header:X-Total-Count", "first_page": 0}, False),
    ],
)
def test_make_planner_for_style_page(pagination: dict[str, Any], open_end: bool) -> None:
    raw = {"source": {"url": SOURCE}, "output": {"path": "out.jsonl"}, "pagination": pagination}
    config = parse_config(raw, environ={}).pagination
    plan = make_planner(config)
    assert isinstance(plan, PagePlanner)
    assert plan.open_end is open_end
    assert plan.first_page == config.first_page
