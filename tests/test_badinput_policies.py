"""Issue 17, policy code: a policy is the user's code running inside ours.
What it does wrong -- a misspelled knob, an exception, sys.exit(), a loop
that never ends, a hook answering 'yes' -- ends in a PolicyError naming
the policy, the method and the line, never in a silently wrong run or a
hang."""

import textwrap

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import policy as policy_module
from pytest_tlbperf.errors import PolicyError

# enough iterations that every flush has the other thread's CPU in mm_cpumask:
# the hook is called
W = tp.workloads.madvise_dontneed(iterations=20)


def _file(tmp_path, body, name="rfc.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _class(body):
    return "import pytest_tlbperf as tp\n\nclass Rfc(tp.Policy):\n" + textwrap.indent(
        textwrap.dedent(body).strip() + "\n", "    ")


@pytest.mark.parametrize("body, wrong, hint", [
    ('lazy_tbl = "stay"', "'lazy_tbl'", "did you mean 'lazy_tlb'?"),
    ('flush_lazy_cpu = "always"', "'flush_lazy_cpu'", "did you mean 'flush_lazy_cpus'?"),
    ("def configur(self, profile):\n    return None", "'configur'", "did you mean 'configure'?"),
    ("def should_flush(self, cpu, info):\n    return True", "'should_flush'",
     "did you mean 'should_flush_cpu'?"),
    ("threshold = 4", "'threshold'", "starts with '_'"),
])
def test_unknown_public_attributes_fail_at_class_creation(tmp_path, body, wrong, hint):
    path = _file(tmp_path, _class(body))
    with pytest.raises(PolicyError) as exc:
        tp.policies.resolve(path)
    msg = str(exc.value)
    assert "rfc.py:Rfc" in msg and f"unknown attribute {wrong}" in msg and hint in msg


def test_what_a_policy_may_define():
    """Knobs, Policy's own attributes and methods, and private helpers."""
    class Fine(tp.Policy):
        """A docstring."""
        name = "fine"
        lazy_tlb = "switch_to_init_mm"
        known_violations = {"stale_tlb"}
        _threshold = 4

        def configure(self, profile):
            return self._helper(profile)

        def _helper(self, profile):
            return {"pv_flush": False} if profile.vendor == "amd" else None

        def expected_violations(self, profile):
            return self.known_violations

        def should_flush_cpu(self, cpu, info):
            return info.default

    assert Fine().knobs(tp.profiles.get("zen1-epyc")).pv_flush is False


def test_the_allowed_set_follows_the_knobs(monkeypatch):
    """A knob added to KNOB_NAMES is allowed without another list to edit."""
    monkeypatch.setattr(policy_module, "KNOB_NAMES", policy_module.KNOB_NAMES + ("new_knob",))
    monkeypatch.setattr(tp.Policy, "new_knob", "a", raising=False)
    monkeypatch.setattr(policy_module.abi, "KNOB_VALUES",
                        dict(policy_module.abi.KNOB_VALUES, new_knob=("a", "b")))

    class UsesIt(tp.Policy):
        new_knob = "b"
    assert UsesIt.new_knob == "b"


@pytest.mark.parametrize("body, expect", [
    ("import pytest_tlbperf\n1 / 0\n", "failed to import: ZeroDivisionError: division by zero "
                                       "(rfc.py:2)"),
    ("import sys\nsys.exit(3)\n", "failed to import: called sys.exit(3) (rfc.py:2)"),
    ("class Rfc(:\n", "failed to import: SyntaxError"),
    ("x = 1\n", "defines 0 Policy subclasses"),
])
def test_import_errors_are_named(tmp_path, monkeypatch, body, expect):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError, match="rfc.py") as exc:
        tp.policies.resolve(_file(tmp_path, body))
    assert expect in str(exc.value)


@pytest.mark.parametrize("body, expect", [
    ("def __init__(self):\n    raise RuntimeError('no')",
     "__init__() raised RuntimeError: no (rfc.py:5)"),
    ("def __init__(self):\n    import sys; sys.exit(1)", "__init__() called sys.exit(1)"),
    ("def configure(self, profile):\n    return {}['x']",
     "configure(haswell-4c) raised KeyError: 'x' (rfc.py:5)"),
    ("def configure(self, profile):\n    raise SystemExit",
     "configure(haswell-4c) called sys.exit()"),
    ("def configure(self, profile):\n    return 'lazy'", "configure() must return a dict"),
])
def test_policy_code_errors_name_the_policy_and_method(tmp_path, monkeypatch, body, expect):
    monkeypatch.chdir(tmp_path)
    path = _file(tmp_path, _class(body))
    with pytest.raises(PolicyError) as exc:
        tp.run(W, "haswell-4c", path)
    assert "rfc.py:Rfc" in str(exc.value) or "policy Rfc" in str(exc.value)
    assert expect in str(exc.value)


def _hooked(result):
    class Hooked(tp.Policy):
        def should_flush_cpu(self, cpu, info):
            return result(info)
    return Hooked


@pytest.mark.parametrize("result, expect", [
    (lambda info: 1 / 0, "should_flush_cpu(cpu"),
    (lambda info: "yes", "returned 'yes' (str); it must return True or False"),
    (lambda info: None, "returned None (NoneType)"),
    (lambda info: 1, "returned 1 (int)"),
])
def test_hook_errors_and_answers_that_are_not_bools(result, expect):
    with pytest.raises(PolicyError, match="should_flush_cpu") as exc:
        tp.run(W, "haswell-4c", _hooked(result), engine="python")
    assert expect in str(exc.value)


def test_a_hook_that_returns_a_bool_runs():
    calls = []
    r = tp.run(W, "haswell-4c", _hooked(lambda info: calls.append(1) or info.default),
               engine="python", seed=3)
    assert calls and r.metrics == tp.run(W, "haswell-4c", "mainline", engine="python",
                                         seed=3).metrics


def test_sys_exit_in_a_hook_does_not_end_the_process():
    class Exits(tp.Policy):
        def should_flush_cpu(self, cpu, info):
            raise SystemExit(0)
    with pytest.raises(PolicyError, match=r"should_flush_cpu\(cpu\d+\) called sys.exit\(0\)"):
        tp.run(W, "haswell-4c", Exits)


@pytest.mark.parametrize("body", [
    "def should_flush_cpu(self, cpu, info):\n    while True:\n        pass",
    # one line: the loop jumps back to itself without a new line event
    "def should_flush_cpu(self, cpu, info):\n    while True: pass",
    "def should_flush_cpu(self, cpu, info):\n    while True:\n        try:\n"
    "            pass\n        except Exception:\n            pass",
    "def configure(self, profile):\n    n = 0\n    while n >= 0:\n        n += 1",
])
def test_policy_code_that_never_returns_is_stopped(tmp_path, monkeypatch, body):
    """Deterministically: the budget counts lines, so the error does not
    depend on how loaded the machine is."""
    monkeypatch.setattr(policy_module, "CALL_BUDGET", 20_000)
    with pytest.raises(PolicyError, match="ran more than 20000 Python instructions in one call"):
        tp.run(W, "haswell-4c", _file(tmp_path, _class(body)))


def test_ctrl_c_in_policy_code_is_not_swallowed():
    class Interrupted(tp.Policy):
        def configure(self, profile):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tp.run(W, "haswell-4c", Interrupted)


def test_a_policy_name_must_be_a_string():
    with pytest.raises(PolicyError, match="name must be a non-empty string, got 3"):
        class Numbered(tp.Policy):
            name = 3


class Meddler(tp.Policy):
    """configure() that 'tunes' the machine it is given."""
    def configure(self, profile):
        profile.costs["ipi_send"] = 0
        return None


class Resizer(tp.Policy):
    def configure(self, profile):
        profile.cpus = 2


@pytest.mark.parametrize("policy, what", [(Meddler, "TypeError: a profile is read-only"),
                                          (Resizer, "AttributeError: <Profile haswell-4c")])
def test_configure_cannot_corrupt_the_cached_profile(policy, what):
    """The baseline's later samples ran on whatever configure() left behind,
    with the same saved digest."""
    before = tp.run(tp.workloads.madvise_dontneed(iterations=5), "haswell-4c", seed=2)
    with pytest.raises(PolicyError) as exc:
        tp.run(tp.workloads.madvise_dontneed(iterations=5), "haswell-4c", policy, seed=2)
    assert "configure(haswell-4c)" in str(exc.value) and what in str(exc.value)
    assert "read-only" in str(exc.value)
    after = tp.run(tp.workloads.madvise_dontneed(iterations=5), "haswell-4c", seed=2)
    assert after == before
