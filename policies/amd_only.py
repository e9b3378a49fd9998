"""amd_only: seed 000's preference, "leave it as is except on the buggy AMD CPUs".

Lutomirski, Sep 8 2017: "I'd prefer to leave it as is except on the buggy AMD
CPUs, though, since the current code is nice and fast." On AMD parts this
policy reverts to IPIs for lazy CPUs (revert_to_ipi's knobs); everywhere else
it keeps lazy_pcid. Seed 001 answers it: "we actually need to propagate
flushes everywhere that could have references to the flushed range" -- on
Intel the speculative walks through freed tables still happen, they just do
not hang, so the oracle still reports them there (severity "silent").

Relative to lazy_pcid: configure(profile) switches to revert_to_ipi's knobs
when profile.vendor == "amd".
Kernel functions: as lazy_pcid and revert_to_ipi, chosen per CPU vendor.
"""

from .lazy_pcid import LazyPcid
from .revert_to_ipi import RevertToIpi


class AmdOnly(LazyPcid):
    name = "amd_only"

    def configure(self, profile):
        if profile.vendor == "amd":
            return {"lazy_cpumask": RevertToIpi.lazy_cpumask,
                    "flush_lazy_cpus": RevertToIpi.flush_lazy_cpus}
        return None

    def expected_violations(self, profile):
        return frozenset() if profile.vendor == "amd" else self.known_violations
