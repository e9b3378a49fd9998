"""Built-in suites: pytest test files over workloads x profiles x policies.

Run them with `pytest --tlbperf --pyargs pytest_tlbperf.suites`. Each file is
one workload family and picks the profiles where its question matters; the
plugin parametrizes every test over the selected policies (default: every
registered one, against the baseline `mainline`). Write your own the same way.
"""
