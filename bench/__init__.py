"""pbroker benchmark harness: pbroker vs Twisted PB, Pyro5, RPyC and raw msgpack floors.

Run with `make bench` (installs the `bench` extra) or `python -m bench [--quick]`.
Each system lives in bench/sys_*.py; bench/runner.py drives server and client
processes; bench/report.py writes bench/results.md and bench/results.png.
Nothing here is imported by the test suite.
"""
