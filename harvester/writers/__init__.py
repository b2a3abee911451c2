"""Output formats behind one small interface (base.Writer); the sinks only order pages."""

from harvester.writers.base import Format, Target, Writer, records_of
from harvester.writers.registry import format_of, make_writer, register, writer_class

__all__ = [
    "Format",
    "Target",
    "Writer",
    "format_of",
    "make_writer",
    "records_of",
    "register",
    "writer_class",
]
