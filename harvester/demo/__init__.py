"""The demo API: an OAuth2-protected, paginated REST API on loopback, with switchable faults.

`python -m harvester.demo --help` runs it as a process; `run_demo()` runs it inside a test.
"""

from .records import expected_record, expected_records
from .server import DemoServer, create_app, run_demo
from .settings import DemoSettings, DemoStats

__all__ = [
    "DemoSettings",
    "DemoStats",
    "DemoServer",
    "create_app",
    "run_demo",
    "expected_record",
    "expected_records",
]
