"""The demo API: an OAuth2-protected, paginated REST API on loopback, with switchable faults.

`python -m harvester.demo --help` runs it as a process; `run_demo()` runs it inside a test.

Every endpoint serves the same records (`expected_records`): ids 0..records-1, record i created
i minutes after 2024-01-01T00:00:00Z. Data endpoints (Bearer token; all GET):

    /items?offset=&limit=     {"items", "total", "offset", "limit"} and X-Total-Count
    /range-items              Range: items=a-b -> 206, a bare list and Content-Range; 416
    /pages?page=&page_size=   {"results", "count", "total_pages", "page"}; 404 past the last
    /stream?offset=&limit=    {"items"} only: no total anywhere; [] past the end
    /cursor?limit=&cursor=|after=&id_from=&id_to=&since=&until=
                              {"data", "next_cursor"} and X-Next-Cursor; keyset on the id
    /link?offset=&limit=&id_from=&id_to=
                              {"count", "next", "previous", "results"} and a Link header

A parameter out of its domain is 400 invalid_request. With `loop_cursor_at`, the /cursor and
/link page that starts there points next back at the page before it; `cross_host_next` points
/link's next at another host. The bad-input traps (`garbage_at`, `html_at`, `repeat_page_at`,
`grow_at` with `grow_by`) change /items answers; `scope_refusal_status` picks 400 or 403 for a
refused scope. Switches for real servers' ways (harvester.demo.quirks): `inclusive_filters`,
`json_meta_header`, `range_echo`, `range_empty_past_end`, `range_no_total`, `empty_pages_every`,
`repeat_last_past_end`, `short_page_at`. `totals_in`, `next_cursor_in` and `next_link_in` put
/items's total, /cursor's next cursor and /link's next URL only in the body or only in a header.
The token endpoint can check JWT client assertions (`assertion_jwks`, `secret_assertions`:
harvester.demo.assertions) and answer tokens in other shapes (`token_field`, `expires_at`,
`token_type`, `token_header`, `token_scheme`: harvester.demo.token_shapes).
Also: POST /oauth2/token (client_secret_basic, client_secret_post, and tls_client_auth over
https with a client certificate: harvester.demo.mtls), the issuer's discovery documents
(harvester.demo.discovery), GET /_stats, GET /health.
"""

from .records import expected_record, expected_records
from .server import DemoServer, create_app, run_demo
from .settings import DemoSettings
from .stats import DemoStats

__all__ = [
    "DemoSettings",
    "DemoStats",
    "DemoServer",
    "create_app",
    "run_demo",
    "expected_record",
    "expected_records",
]
