"""pytest-tlbperf: measure and check x86 TLB-shootdown and lazy-TLB patches
on a modeled multicore machine.

    import pytest_tlbperf as tp
    result = tp.run(tp.workloads.kernel_build(), profile="zen1-epyc",
                    policy="mainline", seed=1)
    result.metrics["ipis"], result.violations
"""

from ._source_tree import map_source_folders

map_source_folders(__name__, __file__)      # a clone imports whole: see _source_tree

from . import metrics, profiles, workloads
from . import policies
from .api import MODEL_VERSION, Result, run
from .errors import (EngineUnavailable, PolicyError, ProfileError, TlbperfError,
                     WorkloadError)
from .policy import Knobs, Policy
from .result import Violation

__version__ = "0.1.0"

__all__ = ["run", "Result", "Violation", "Policy", "Knobs", "profiles", "policies",
           "metrics", "workloads", "MODEL_VERSION", "TlbperfError", "ProfileError",
           "PolicyError", "WorkloadError", "EngineUnavailable"]
