"""`harvester init URL`: from an API's address to a verified, commented config.

probe.py sends the requests (budget, pacing, 429s waited out); shape.py reads one answer;
paging.py proves how the pages go; page_size.py finds the largest page; draft.py and
render.py write the config; verify.py harvests two pages with it before it is written;
command.py is the command line.
"""
