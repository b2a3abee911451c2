"""`harvester tune`: find the concurrency (and rate) an API admits, by trying it for real.

Concurrency ramps 1, 2, 4, ... against the configured endpoint. Pages are read and parsed but
never written; requests go one attempt each, with no configured rate_limit and nothing adapting
on its own (measure.py): each step shows what the API does at that concurrency. At the first
refusal the ramp ends and the rest of the time measures the rate the API sustains once any
burst allowance is spent (ramp.py). The advice and what is printed: advice.py and report.py.
"""

from harvester.tune.advice import Advice, advise
from harvester.tune.measure import Step, sustained_rate
from harvester.tune.ramp import tune
from harvester.tune.report import Tuning, report, summary

__all__ = ["Advice", "Step", "Tuning", "advise", "report", "summary", "sustained_rate", "tune"]
