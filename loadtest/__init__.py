"""Crowd simulator and benchmarks (``python -m loadtest``, also ``live-loadtest``).

- ``loadtest.runner``: the coordinator and the scenarios (crowd, storm, whale, sweep);
- ``loadtest.worker``: a generator process holding its share of the connections;
- ``loadtest.wsclient``: the lean WebSocket client those connections use;
- ``loadtest.setup``: users, rooms and coins over the public HTTP API, and the money check;
- ``loadtest.stats`` and ``loadtest.report``: measurements, the table, JSON and the plot;
- ``loadtest.baseline``: the python-websockets ``broadcast()`` baseline server;
- ``loadtest.bench``: the side-by-side benchmarks of docs/PERFORMANCE.md.
"""
