"""Issue 17's table: every bad input we know of, given the way a user gives
it (pytest --tlbperf, the tlbperf command, the Python API), with the first
line of what it prints and its exit status.

    python tools/badinput_table.py                 # every case, Markdown table on stdout
    python tools/badinput_table.py -k storage -j 2 # cases whose group or input matches
    python tools/badinput_table.py --list          # the cases, without running them

Each case runs in a fresh temporary directory. A case passes when it ends
the way it should: `error` -- a non-zero exit, a message, and no Python
traceback or pytest INTERNALERROR; `ok` -- exit 0 (and `show` found); `fail`
-- a clean test failure (exit 1, no traceback). The script exits 1 when any
case does not pass, so it can be re-run after a merge. It takes a few
minutes (every case starts a Python process), so it is not part of the
test suite; tests/test_badinput*.py hold the fast regression tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PYTEST = [PY, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
TLBPERF = [PY, "-m", "pytest_tlbperf.cli"]
FIFO = object()          # a files= value: make a named pipe there

# -- inputs -------------------------------------------------------------------------


def profile_text(**changes) -> str:
    """haswell-4c.toml with `table__key=value` lines replaced (value as TOML
    text); a key not in the file is added to its table."""
    from importlib import resources
    text = (resources.files("pytest_tlbperf.profiles") / "haswell-4c.toml").read_text()
    text = text.replace('name = "haswell-4c"', 'name = "box"')
    for spec, value in changes.items():
        table, _, key = spec.rpartition("__")
        pattern = re.compile(rf"^({key}) = [^\n]*$", re.M)
        start = 0 if not table else text.index(f"[{table}]")
        end = text.find("\n[", start + 1)
        end = len(text) if end < 0 else end
        section = text[start:end]
        if pattern.search(section):
            section = pattern.sub(lambda m: f"{key} = {value}", section, count=1)
        else:
            section = section.rstrip("\n") + f"\n{key} = {value}\n"
        text = text[:start] + section + text[end:]
    return text


VIRT = "\n[virt]\npreempt_percent = {percent}\npreempt_us = {us}\npv_tlb_flush = true\n"

SUITE = textwrap.dedent('''
    import pytest
    import pytest_tlbperf as tp

    @pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "ipis"])
    def test_madvise(tlbperf):
        tlbperf(tp.workloads.madvise_dontneed(iterations=10))
''')
FAST = ["--tlbperf", "--tlbperf-policy", "concurrent_flush", "--tlbperf-rounds", "2",
        "--tlbperf-max-rounds", "2"]


def suite_with(body: str) -> str:
    return "import pytest\nimport pytest_tlbperf as tp\n\n" + textwrap.dedent(body)


def policy_file(body: str) -> str:
    return "import pytest_tlbperf as tp\n\n\nclass Rfc(tp.Policy):\n" + \
        textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


HOOK = "def should_flush_cpu(self, cpu, info):\n    {}\n"


def hook_policy(stmt: str) -> str:
    return policy_file(HOOK.format(stmt))


def api(stmt: str) -> list:
    """A Python API call: a TlbperfError prints 'error: ...' and exits 1;
    anything else is a traceback."""
    code = ("import sys\nimport pytest_tlbperf as tp\ntry:\n" + textwrap.indent(
        textwrap.dedent(stmt).strip(), "    ") +
        "\nexcept tp.TlbperfError as exc:\n    print(f'error: {exc}')\n    sys.exit(1)\n")
    return [PY, "-c", code]


SIM = TLBPERF + ["simulate", "--workload", "madvise_dontneed", "--seeds", "1"]


class Case:
    def __init__(self, group, label, argv, files=None, expect="error", show=None,
                 interrupt=None, timeout=120, setup=None, env=None, cwd=None):
        self.group, self.label, self.argv = group, label, argv
        self.files = files or {}
        self.expect, self.show = expect, show
        self.interrupt, self.timeout = interrupt, timeout
        self.setup, self.env, self.cwd = setup, env, cwd


def storage_with(name, content):
    """files= for a storage folder holding one good run and `name`."""
    return {".tlbperf/0001_good.json": "@GOOD", f".tlbperf/{name}": content}


def good_run(**changes):
    return ("@GOOD", changes)


def deep_json(n):
    return "[" * n + "]" * n


def cases() -> list:
    C = []
    add = C.append
    # ---- 1. profiles ---------------------------------------------------------------
    g = "1 profiles"
    add(Case(g, "non-UTF-8 TOML", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text().encode() + b"# caf\xe9\n"}))
    add(Case(g, "cstates = [1, 2]", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text().split("[[cstates]]")[0].replace(
                 'clock_mhz', 'cstates = [1, 2]\nclock_mhz')}))
    add(Case(g, "/dev/zero as a profile", SIM + ["--profile", "/dev/zero"], timeout=30))
    add(Case(g, "a FIFO as a profile", SIM + ["--profile", "box.toml"], {"box.toml": FIFO},
             timeout=30))
    add(Case(g, "a directory as a profile", SIM + ["--profile", "box.toml"],
             {"box.toml/x": ""}))
    add(Case(g, "a 5 MB profile", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text() + ("#" * 99 + "\n") * 50_000}))
    add(Case(g, "topology.cpus = 70000 (native limit 65536)",
             SIM + ["--profile", "box.toml", "--engine", "native"],
             {"box.toml": profile_text(topology__cpus=70000, topology__smt=1)}))
    add(Case(g, "costs.access_cycles = 2**45",
             SIM + ["--profile", "box.toml", "--engine", "native"],
             {"box.toml": profile_text(costs__access_cycles=2**45)}))
    add(Case(g, "costs.invlpg_ns = 10**13 (2^44 cycles after conversion)",
             SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(costs__invlpg_ns=10**13)}))
    add(Case(g, "tlb.entries = 2**21", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(tlb__entries=2**21)}))
    add(Case(g, "tlb.psc_entries = 2**21", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(tlb__psc_entries=2**21)}))
    add(Case(g, "65536 CPUs x 1024 TLB entries (memory)", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(topology__cpus=65536, topology__smt=1)}))
    add(Case(g, "clock_mhz = 1 with 95% vCPU preemption for 10 us",
             TLBPERF + ["simulate", "--workload", "vm_overcommit", "--seeds", "1",
                        "--profile", "box.toml"],
             {"box.toml": profile_text(clock_mhz=1) + VIRT.format(percent=95, us=10)},
             timeout=60))
    add(Case(g, "95% vCPU preemption for 1 us at 3.4 GHz",
             TLBPERF + ["simulate", "--workload", "vm_overcommit", "--seeds", "1",
                        "--profile", "box.toml"],
             {"box.toml": profile_text() + VIRT.format(percent=95, us=1)}, timeout=60))
    add(Case(g, "cstates exit_latency_us = 10**12",
             SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(cstates__exit_latency_us=10**12)}))
    add(Case(g, "topology = 3 (not a table)", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text().replace("[topology]", "topology = 3\n[oldtopology]")}))
    add(Case(g, 'topology.cpus = "8" (a string)', SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(topology__cpus='"8"')}))
    add(Case(g, "costs.walk_cycles = 1.5 (a float)", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(costs__walk_cycles=1.5)}))
    add(Case(g, "a misspelled field (cost.walk_cycle)", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text(costs__walk_cycle=100)}))
    add(Case(g, "invalid TOML", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text() + "\n[tlb\n"}))
    add(Case(g, "name with an ANSI escape", SIM + ["--profile", "box.toml"],
             {"box.toml": profile_text().replace('name = "box"', 'name = "box\\u001b[31m"')}))
    add(Case(g, "a profile path that does not exist", SIM + ["--profile", "nope.toml"]))
    add(Case(g, "pytest --tlbperf-profile with a bad file",
             PYTEST + FAST + ["--tlbperf-profile", "box.toml"],
             {"test_suite.py": SUITE, "box.toml": profile_text(tlb__ways=7)}))
    add(Case(g, "tp.profiles.load('/dev/zero')", api("tp.profiles.load('/dev/zero')"),
             timeout=30))
    # ---- 2. workload parameters ----------------------------------------------------
    g = "2 workloads"
    add(Case(g, "madvise_dontneed(iterations=10**7)",
             api("tp.run(tp.workloads.madvise_dontneed(iterations=10**7), 'haswell-4c')")))
    add(Case(g, "kernel_build(jobs=10**6)",
             api("tp.run(tp.workloads.kernel_build(jobs=10**6), 'skylake-2s')")))
    # context_switch(rounds=) became context_switch(warmup_us=, window_us=) on main
    add(Case(g, "munmap_storm(iterations=10**7)",
             api("tp.run(tp.workloads.munmap_storm(iterations=10**7), 'skylake-2s')")))
    add(Case(g, "context_switch(window_us=10**7)",
             api("tp.run(tp.workloads.context_switch(window_us=10**7), 'skylake-2s')")))
    add(Case(g, "exit_storm(processes=10**7)",
             api("tp.run(tp.workloads.exit_storm(processes=10**7), 'skylake-2s')")))
    add(Case(g, "madvise_dontneed(threads=2.0)",
             api("tp.workloads.madvise_dontneed(threads=2.0)")))
    add(Case(g, "madvise_dontneed(threads=True)",
             api("tp.workloads.madvise_dontneed(threads=True)")))
    add(Case(g, "madvise_dontneed(threads=None)",
             api("tp.run(tp.workloads.madvise_dontneed(threads=None), 'haswell-4c')")))
    add(Case(g, "idle_server(workers=64) on an 8-CPU profile",
             api("tp.run(tp.workloads.idle_server(workers=64), 'haswell-4c')")))
    add(Case(g, "custom: an mm of 2**40 pages", api("""
        w = tp.workloads.custom("big", lambda b, p: b.task(b.mm(2**40), 0).access(0))
        tp.run(w, 'haswell-4c')""")))
    add(Case(g, "custom: a float page number", api("""
        w = tp.workloads.custom("f", lambda b, p: b.task(b.mm(512), 0).access(1.5))
        tp.run(w, 'haswell-4c')""")))
    add(Case(g, "custom: 10**8 ops in a loop", api("""
        def build(b, p):
            t = b.task(b.mm(512), 0)
            for _ in range(10**8):
                t.access(0)
        tp.run(tp.workloads.custom("loop", build), 'haswell-4c')""")))
    add(Case(g, "custom: build function raises", api("""
        def build(b, p):
            raise ValueError("oops")
        tp.run(tp.workloads.custom("boom", build), 'haswell-4c')""")))
    add(Case(g, "suite test with kernel_build(jobs=10**6)", PYTEST + FAST,
             {"test_suite.py": suite_with('''
                @pytest.mark.tlbperf(profiles=["haswell-4c"])
                def test_big(tlbperf):
                    tlbperf(tp.workloads.kernel_build(jobs=10**6))
                ''')}, expect="fail"))
    # ---- 3. policy code ------------------------------------------------------------
    g = "3 policy code"
    pol = PYTEST + FAST[:1] + ["--tlbperf-rounds", "2", "--tlbperf-max-rounds", "2",
                               "--tlbperf-engine", "python", "--tlbperf-policy", "rfc.py"]
    for label, body, expect in [
            ("exception at import", "import pytest_tlbperf\n1 / 0\n", "error"),
            ("sys.exit() at import", "import sys\nsys.exit(3)\n", "error"),
            ("syntax error", "class Rfc(:\n", "error"),
            ("no Policy subclass", "x = 1\n", "error"),
            ("exception in __init__",
             policy_file("def __init__(self):\n    raise RuntimeError('no')"), "error"),
            ("sys.exit() in __init__",
             policy_file("def __init__(self):\n    import sys; sys.exit(1)"), "error"),
            ("exception in configure()",
             policy_file("def configure(self, profile):\n    return {}['x']"), "error"),
            ("sys.exit() in configure()",
             policy_file("def configure(self, profile):\n    raise SystemExit(4)"), "error"),
            ("configure() loops forever",
             policy_file("def configure(self, profile):\n    while True:\n        pass"),
             "error"),
            ("exception in should_flush_cpu()", hook_policy("return 1 / 0"), "fail"),
            ("sys.exit() in should_flush_cpu()", hook_policy("raise SystemExit(0)"), "fail"),
            ("should_flush_cpu() returns 'yes'", hook_policy("return 'yes'"), "fail"),
            ("should_flush_cpu() returns None", hook_policy("return None"), "fail"),
            ("should_flush_cpu() loops forever", hook_policy("while True: pass"), "fail"),
            ("should_flush_cpu() recurses forever",
             policy_file("def should_flush_cpu(self, cpu, info):\n"
                         "    return self.should_flush_cpu(cpu, info)"), "fail")]:
        add(Case(g, f"--tlbperf-policy: {label}", pol,
                 {"test_suite.py": SUITE, "rfc.py": body}, expect=expect, timeout=120))
    add(Case(g, "--tlbperf-engine native with a hook policy",
             PYTEST + FAST[:1] + ["--tlbperf-engine", "native", "--tlbperf-policy", "rfc.py"],
             {"test_suite.py": SUITE, "rfc.py": hook_policy("return info.default")}))
    add(Case(g, "simulate --engine native with a hook policy",
             SIM + ["--engine", "native", "--policy", "rfc.py"],
             {"rfc.py": hook_policy("return info.default")}))
    add(Case(g, "simulate: exception in configure()",
             SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("def configure(self, profile):\n    raise KeyError(1)")}))
    add(Case(g, "simulate: hook loops forever", SIM + ["--policy", "rfc.py"],
             {"rfc.py": hook_policy("while True: pass")}))
    add(Case(g, "module:Class that does not exist", SIM + ["--policy", "nomod:Rfc"]))
    add(Case(g, "import loops forever, Ctrl-C 1 s into the loop",
             PYTEST + FAST[:1] + ["--tlbperf-policy", "rfc.py"],
             {"test_suite.py": SUITE,
              "rfc.py": "open('started', 'w').close()\nwhile True:\n    pass\n"},
             interrupt=("started", 1)))
    add(Case(g, "Ctrl-C 1 s into a python-engine pytest run",
             PYTEST + ["--tlbperf", "--tlbperf-engine", "python", "--tlbperf-rounds", "50",
                       "--tlbperf-policy", "concurrent_flush"],
             {"test_suite.py": suite_with('''
                @pytest.mark.tlbperf(profiles=["skylake-2s"])
                def test_build(tlbperf):
                    open("started", "w").close()
                    tlbperf(tp.workloads.kernel_build(jobs=64))
                ''')}, interrupt=("started", 1)))
    add(Case(g, "Ctrl-C 2 s into tlbperf simulate (python engine)",
             TLBPERF + ["simulate", "--engine", "python", "--seeds", "50", "--policy", "rfc.py"],
             {"rfc.py": policy_file("def __init__(self):\n    open('started', 'w').close()")},
             interrupt=("started", 2)))
    # ---- 4. silently wrong ---------------------------------------------------------
    g = "4 silently wrong"
    add(Case(g, 'misspelled knob lazy_tbl = "stay"', SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file('lazy_tbl = "stay"')}))
    add(Case(g, "misspelled method configur()", SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("def configur(self, profile):\n    return None")}))
    add(Case(g, "a public helper attribute", SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("threshold = 4")}))
    add(Case(g, 'a bad knob value lazy_tlb = "sty"', SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file('lazy_tlb = "sty"')}))
    add(Case(g, "configure() sets profile.cpus", SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("def configure(self, profile):\n"
                                    "    profile.cpus = 2")}))
    add(Case(g, "configure() changes profile.costs", SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("def configure(self, profile):\n"
                                    "    profile.costs['ipi_send'] = 0")}))
    add(Case(g, "configure() returns an unknown knob", SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file("def configure(self, profile):\n"
                                    "    return {'lazy_tbl': 'stay'}")}))
    add(Case(g, "compare: the saved profile digest differs",
             TLBPERF + ["compare", "0001", "0002"],
             {".tlbperf/0001_good.json": "@GOOD",
              ".tlbperf/0002_other.json": good_run(profiles="@DIGEST")},
             expect="ok", show=r"warning"))
    add(Case(g, "compare: the model version differs", TLBPERF + ["compare", "0001", "0002"],
             {".tlbperf/0001_good.json": "@GOOD",
              ".tlbperf/0002_other.json": good_run(model_version="0")},
             expect="ok", show=r"warning"))
    add(Case(g, "policy file whose name has an ANSI escape",
             PYTEST + FAST[:1] + ["--tlbperf-rounds", "2", "--tlbperf-max-rounds", "2", "-v",
                                  "--tlbperf-policy", "evil\x1b[31m.py"],
             {"test_suite.py": SUITE,
              "evil\x1b[31m.py": policy_file('flush_local = "before_remote"')}, expect="ok",
             show=r"evil\\x1b\[31m\.py +\d"))
    add(Case(g, "policy name (name =) with a newline and an ANSI escape, in an error",
             SIM + ["--policy", "rfc.py"],
             {"rfc.py": policy_file('name = "evil\\n\\x1b[31mred"\n'
                                    'def configure(self, profile):\n    return 1 / 0')},
             show=r"evil\\n\\x1b\[31mred: configure"))
    add(Case(g, "test parameter with a newline and an ANSI escape",
             PYTEST + FAST + ["--tlbperf-text", "out.txt"],
             {"test_suite.py": suite_with('''
                @pytest.mark.parametrize("tag", ["a\\nb\\x1b[2J"])
                @pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["ipis"])
                def test_p(tlbperf, tag):
                    tlbperf(tp.workloads.madvise_dontneed(iterations=5))
                ''')}, expect="ok", show=r"test_p\["))
    # ---- 5. storage ----------------------------------------------------------------
    g = "5 storage"
    for label, content in [("a binary file", b"\x00\xff\xfe" * 100),
                           ("a 100000-deep nested array", deep_json(100_000)),
                           ("a run whose cells are a string", good_run(cells="x")),
                           ("a metric value that is a string",
                            good_run(metric="abc")),
                           ("a metric value NaN", good_run(metric="@NAN")),
                           ("a metric value null", good_run(metric=None)),
                           ("a violation without its kind", good_run(violation="@NOKIND")),
                           ("a numeric id", good_run(id=7)),
                           ("commit: null", good_run(commit=None))]:
        files = storage_with("0002_bad.json", content)
        add(Case(g, f"list with {label}", TLBPERF + ["list"], files, expect="ok",
                 show=r"unreadable|0002"))
        add(Case(g, f"report with {label}", TLBPERF + ["report", "0002"], files))
    add(Case(g, "compare with a binary run beside two good ones",
             TLBPERF + ["compare", "0001", "0003"],
             {".tlbperf/0001_good.json": "@GOOD", ".tlbperf/0002_bad.json": b"\x00\xff",
              ".tlbperf/0003_good.json": "@GOOD"}, expect="ok",
             show=r"skipped|unreadable|policy"))
    add(Case(g, "tlbperf report /dev/zero", TLBPERF + ["report", "/dev/zero"], timeout=30))
    add(Case(g, "tlbperf report FIFO.json", TLBPERF + ["report", "run.json"],
             {"run.json": FIFO}, timeout=30))
    add(Case(g, "save into a storage path that is a file",
             PYTEST + FAST + ["--tlbperf-save", "--tlbperf-storage", "runs",
                              "--tlbperf-html", "r.html", "--tlbperf-json", "r.json"],
             {"test_suite.py": SUITE, "runs": "not a folder"}, expect="error",
             show=r"cannot save|save"))
    add(Case(g, "save after 9999_x.json exists",
             PYTEST + FAST + ["--tlbperf-save"],
             {"test_suite.py": SUITE, ".tlbperf/9999_x.json": "@GOOD"}, expect="ok",
             show=r"saved run"))
    add(Case(g, "6 parallel saves", [PY, "-c", PARALLEL_SAVES],
             {"test_suite.py": SUITE}, expect="ok", show=r"ids"))
    add(Case(g, "--tlbperf-storage=../runs, then --tlbperf-storage ../runs",
             [PY, "-c", STORAGE_FORMS], {"repo/test_suite.py": SUITE}, expect="ok",
             show=r"same folder|different"))
    add(Case(g, "save with an existing absolute --tlbperf-html outside the repository",
             [PY, "-c", HTML_OUTSIDE], {"repo/test_suite.py": SUITE}, expect="ok",
             show=r"saved"))
    # ---- 6. options ----------------------------------------------------------------
    g = "6 options"
    for opts in (["-o", "tlbperf_rounds=abc"], ["-o", "tlbperf_max_rounds=abc"],
                 ["-o", "tlbperf_rounds=0"], ["-o", "tlbperf=maybe"],
                 ["-o", "tlbperf_autosave=perhaps"], ["-o", "tlbperf_engine=fast"],
                 ["-o", "tlbperf_fail_on=always"], ["--tlbperf-rounds", "0"],
                 ["--tlbperf-rounds", str(10**9)], ["--tlbperf-max-rounds", "0"],
                 ["--tlbperf-max-rounds", str(10**9)], ["--tlbperf-threshold", "abc"],
                 ["--tlbperf-export", "csv=x.csv"], ["--tlbperf-engine", "fast"],
                 ["--tlbperf-html", "nodir/r.html"], ["--tlbperf-json", "adir"],
                 ["--tlbperf-text", "/proc/version"], ["--tlbperf-compare", "nope"],
                 ["--tlbperf-baseline", "nope"]):
        flag = [] if opts[-1].startswith("tlbperf=") else ["--tlbperf"]
        add(Case(g, "pytest " + " ".join(flag + opts), PYTEST + flag + opts,
                 {"test_suite.py": SUITE, "adir/x": ""}))
    add(Case(g, 'marker profiles=["nope"]', PYTEST + FAST,
             {"test_suite.py": suite_with('''
                @pytest.mark.tlbperf(profiles=["nope"])
                def test_x(tlbperf):
                    tlbperf(tp.workloads.madvise_dontneed(iterations=5))
                ''')}))
    add(Case(g, 'marker rounds="abc"', PYTEST + ["--tlbperf"],
             {"test_suite.py": suite_with('''
                @pytest.mark.tlbperf(profiles=["haswell-4c"], rounds="abc")
                def test_x(tlbperf):
                    tlbperf(tp.workloads.madvise_dontneed(iterations=5))
                ''')}))
    add(Case(g, 'marker metrics=["ipi"]', PYTEST + FAST,
             {"test_suite.py": suite_with('''
                @pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["ipi"])
                def test_x(tlbperf):
                    tlbperf(tp.workloads.madvise_dontneed(iterations=5))
                ''')}))
    add(Case(g, "report -o nodir/r.html", TLBPERF + ["report", "0001", "-o", "nodir/r.html"],
             {".tlbperf/0001_good.json": "@GOOD"}))
    add(Case(g, "export -o nodir/pb.json",
             TLBPERF + ["export", "0001", "--format", "pytest-benchmark", "-o", "nodir/pb.json"],
             {".tlbperf/0001_good.json": "@GOOD"}))
    add(Case(g, "simulate --json nodir/x.json", SIM + ["--json", "nodir/x.json"]))
    add(Case(g, "simulate --json adir (a directory)", SIM + ["--json", "adir"],
             {"adir/x": ""}))
    add(Case(g, "simulate --policy A --policy B",
             SIM + ["--policy", "mainline", "--policy", "lazy_pcid"], expect="ok",
             show=r"lazy_pcid"))
    add(Case(g, "simulate --seeds 10**12", TLBPERF + ["simulate", "--seeds", str(10**12)],
             timeout=30))
    add(Case(g, "simulate --seeds 0", TLBPERF + ["simulate", "--seeds", "0"]))
    add(Case(g, "simulate --traces -1", SIM + ["--traces", "-1"]))
    add(Case(g, "matrix --seeds 10**12", TLBPERF + ["matrix", "--seeds", str(10**12)],
             timeout=30))
    add(Case(g, "calibrate --iterations 10**9",
             TLBPERF + ["calibrate", "--iterations", str(10**9)], timeout=30))
    add(Case(g, "report nope (no such run)", TLBPERF + ["report", "nope"],
             {".tlbperf/0001_good.json": "@GOOD"}))
    # ---- 7. the first hour ---------------------------------------------------------
    g = "7 first hour"
    add(Case(g, "pytest --tlbperf in an empty directory (--co)",
             PYTEST + ["--tlbperf", "--co"], expect="ok", show=r"\d+ tests? collected"))
    add(Case(g, "pytest --tlbperf --tlbperf-policy my_rfc.py in an empty directory (--co)",
             PYTEST + ["--tlbperf", "--co", "--tlbperf-policy", "my_rfc.py"],
             {"my_rfc.py": policy_file('flush_local = "before_remote"')}, expect="ok",
             show=r"\d+ tests? collected"))
    add(Case(g, "pytest --tlbperf empty_dir/ (a path: only that)",
             PYTEST + ["--tlbperf", "empty_dir"], {"empty_dir/README": ""},
             expect="error", show=r"no tests ran"))
    add(Case(g, "import pytest_tlbperf in a clone's root, installed without the "
                "editable finder", [PY, "-S", "-c", SHADOW], cwd=REPO, expect="ok",
             show=r"imported"))
    add(Case(g, "tox -l", [PY, "-m", "tox", "-l"], cwd=REPO, expect="ok", show=r"asan"))
    return C


# Several pytest runs saving into one storage folder at once.
PARALLEL_SAVES = textwrap.dedent(f'''
    import subprocess, json, pathlib
    cmd = {PYTEST + FAST!r} + ["--tlbperf-save"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(6)]
    codes = [p.wait() for p in procs]
    ids = sorted(json.loads(p.read_text())["id"] for p in pathlib.Path(".tlbperf").glob("*.json"))
    print(f"exit {{codes}}; ids {{ids}}; unique: {{len(set(ids)) == len(ids) == 6}}")
    raise SystemExit(0 if len(set(ids)) == 6 and set(codes) == {{0}} else 1)
''')

# The two spellings of a path option: the same folder.
STORAGE_FORMS = textwrap.dedent(f'''
    import subprocess, pathlib, os
    os.chdir("repo")
    base = {PYTEST + FAST!r} + ["--tlbperf-save"]
    subprocess.run(base + ["--tlbperf-storage=../runs"], check=True, capture_output=True)
    subprocess.run(base + ["--tlbperf-storage", "../runs"], check=True, capture_output=True)
    found = sorted(str(p.relative_to(pathlib.Path("..").resolve()))
                   for p in pathlib.Path("..").resolve().rglob("0*.json"))
    print("same folder" if len(found) == 2 and len({{os.path.dirname(f) for f in found}}) == 1
          else "different folders", found)
    raise SystemExit(0 if len(found) == 2 and len({{os.path.dirname(f) for f in found}}) == 1
                     else 1)
''')

# A run saved with an absolute --tlbperf-html path outside the repository
# that already exists: pytest took that path for a test path.
HTML_OUTSIDE = textwrap.dedent(f'''
    import subprocess, pathlib, os, json
    os.chdir("repo")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    out = pathlib.Path("../out").resolve()
    out.mkdir()
    (out / "r.html").write_text("old")
    subprocess.run({PYTEST + FAST!r} + ["--tlbperf-save", "--tlbperf-html", str(out / "r.html")],
                   check=True, capture_output=True)
    saved = [str(p.relative_to(pathlib.Path("..").resolve()))
             for p in pathlib.Path("..").resolve().rglob("0*.json")]
    commit = json.loads(pathlib.Path("..", saved[0]).read_text())["commit"] if saved else None
    print(f"saved {{saved}} with commit {{commit}}")
    raise SystemExit(0 if saved == ["repo/.tlbperf/0001_" + commit + ".json"] else 1)
''')

# The clone's own folder first on sys.path, the installed dependencies
# after it, and no .pth file run (so no editable finder): what `python -c`
# in a clone sees after `pip install .`.
SHADOW = textwrap.dedent(f'''
    import sys
    sys.path[:0] = [""]
    sys.path += {site.getsitepackages()!r}
    import pytest_tlbperf, pytest_tlbperf.reports.report, pytest_tlbperf.suites
    print("imported", pytest_tlbperf.__file__, len(pytest_tlbperf.policies.names()), "policies")
''')


# -- running ------------------------------------------------------------------------

def _good_run(workdir: Path) -> dict:
    """A real saved run, made once by a tiny pytest session."""
    (workdir / "test_suite.py").write_text(SUITE)
    subprocess.run(PYTEST + FAST + ["--tlbperf-save=good"], cwd=workdir, check=True,
                   capture_output=True)
    return json.loads(next((workdir / ".tlbperf").glob("*.json")).read_text())


def _materialize(value, good, name):
    """A files= value as it is written: "@GOOD" and ("@GOOD", changes) are
    the good run (changed), with the id its file name gives it."""
    number = re.match(r"(?:.*/)?(\d+)_[^/]*\.json$", name)
    good = dict(good, id=number.group(1)) if number else good
    if isinstance(value, str) and value == "@GOOD":
        return json.dumps(good)
    if isinstance(value, tuple) and value[0] == "@GOOD":
        run = json.loads(json.dumps(good))
        for key, v in value[1].items():
            if key == "metric":
                sample = run["cells"][0]["seeds"][0]["metrics"]
                sample[next(iter(sample))] = float("nan") if v == "@NAN" else v
            elif key == "violation":
                run["cells"][0]["seeds"][0]["violations"] = [
                    {"severity": "silent", "cpu": 1, "time_ns": 5, "trace": []}]
            elif key == "profiles" and v == "@DIGEST":
                run["profiles"] = {k: "0" * 16 for k in run["profiles"]}
            else:
                run[key] = v
        return json.dumps(run)          # NaN is written as NaN, as Python's json does
    return value


def run_case(case: Case, good: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tlbperf-badinput-"))
    try:
        for name, content in case.files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            content = _materialize(content, good, name)
            if content is FIFO:
                os.mkfifo(path)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        env = dict(os.environ, **(case.env or {}), PYTHONDONTWRITEBYTECODE="1",
                   COLUMNS="100")
        started = time.monotonic()
        proc = subprocess.Popen(SIGINT_DEFAULT + case.argv, cwd=case.cwd or tmp, env=env,
                                text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                errors="replace", start_new_session=True)
        try:
            if case.interrupt:          # (file the case makes when it is under way, delay)
                marker, delay = case.interrupt
                while not (tmp / marker).exists() and proc.poll() is None:
                    time.sleep(0.05)
                try:
                    proc.wait(delay)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=case.timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            code = "HANG"
        return {"case": case, "out": out, "code": code,
                "seconds": time.monotonic() - started}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Run each case with SIGINT at its default action: a shell without job
# control starts background commands with SIGINT ignored, and Python then
# never installs its KeyboardInterrupt handler (the Ctrl-C cases would pass
# or fail for the harness's sake).
SIGINT_DEFAULT = [PY, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, "
                  "signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"]

_BAD = re.compile(r"Traceback \(most recent call last\)|INTERNALERROR|MemoryError")
_MESSAGE = [re.compile(p) for p in (
    r"^ERROR: .*", r"^\S*tlbperf: error: .*", r"^error: .*", r"^usage error: .*",
    r"^FAILED .*", r"^E +\S.*", r"^ERROR .*", r"^tlbperf: .*[Ee]rror.*",
    r".*[Ii]nterrupted.*", r".*KeyboardInterrupt.*", r"^\S+: error: .*")]


def first_line(out: str, show=None) -> str:
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    bad = next((line for line in lines if _BAD.search(line)), None)
    if bad:
        return bad
    patterns = ([re.compile(f".*(?:{show}).*")] if show else []) + _MESSAGE
    for pattern in patterns:
        hit = next((line for line in lines if pattern.match(line)), None)
        if hit:
            return hit
    return lines[-1] if lines else "(no output)"


def verdict(result) -> bool:
    case, out, code = result["case"], result["out"], result["code"]
    if code == "HANG" or _BAD.search(out) or "\x1b" in out:
        return False
    if case.expect == "ok":
        return code == 0 and (not case.show or re.search(case.show, out) is not None)
    if case.expect == "fail":
        return code == 1
    if case.show and not re.search(case.show, out):
        return False
    return code not in (0, None)


def _cell(text: str, width=110) -> str:
    text = text.replace("|", "\\|").replace("\x1b", "\\x1b")
    return text if len(text) <= width else text[: width - 3] + "..."


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", help="only cases whose group or input contains this")
    p.add_argument("-j", type=int, default=2, help="cases run at once (default 2)")
    p.add_argument("--list", action="store_true", help="list the cases")
    args = p.parse_args(argv)
    todo = [c for c in cases() if not args.k or args.k in f"{c.group} {c.label}"]
    if args.list:
        for c in todo:
            print(f"{c.group:18s} {c.label}")
        print(f"{len(todo)} cases")
        return 0
    with tempfile.TemporaryDirectory() as work:
        good = _good_run(Path(work))
    with concurrent.futures.ThreadPoolExecutor(args.j) as pool:
        results = list(pool.map(lambda c: run_case(c, good), todo))
    print("| group | input | exit | first line of what it prints | ok |")
    print("|---|---|---|---|---|")
    failed = 0
    for r in results:
        ok = verdict(r)
        failed += not ok
        print(f"| {r['case'].group} | {_cell(r['case'].label, 70)} | {r['code']} | "
              f"`{_cell(first_line(r['out'], r['case'].show))}` | {'yes' if ok else 'NO'} |")
    print(f"\n{len(results) - failed} of {len(results)} cases end as they should")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
