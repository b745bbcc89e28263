"""pbroker benchmark harness: pbroker (every client style) vs gRPC, Twisted PB, Pyro5, RPyC and
raw msgpack floors, plus pbroker's cost curves (connections, payload, live references, soak).

Run with `make bench` (installs the `bench` extra) or `python -m bench [--quick]
[--no-curves | --curves-only]`; bench/README.md says what each scenario measures.
Each system lives in bench/sys_*.py; bench/runner.py drives server and client
processes, bench/curves.py the curves; bench/report.py writes bench/results.md and
bench/results.png.
Nothing here is imported by the test suite.
"""
