"""JSON Lines: the pages' bytes as they come, one record a line."""

from __future__ import annotations

from harvester.page import Page
from harvester.writers.encoded import EncodedWriter


class JsonlWriter(EncodedWriter):
    """One record a line, each as harvester.read encoded it (every number as the server sent it)."""

    def encode(self, page: Page) -> bytes:
        return page.data


WRITER = JsonlWriter
