"""Built-in suites: pytest test files over workloads x profiles x policies.

They arrive with the plugin (`pytest --tlbperf`); until then the built-in
workloads are simulated by `tlbperf simulate`.
"""
