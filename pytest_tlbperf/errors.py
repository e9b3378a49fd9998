"""Exceptions users see. Each message names the thing that is wrong (a file,
a field, a policy, a knob) and what would be accepted instead."""


class TlbperfError(Exception):
    """Base class of every error pytest-tlbperf raises on bad input."""


class ProfileError(TlbperfError):
    """A machine profile is unknown or invalid."""


class PolicyError(TlbperfError):
    """A policy is unknown, cannot be imported, or sets an invalid knob."""


class WorkloadError(TlbperfError):
    """A workload was given parameters it cannot run with."""


class EngineUnavailable(TlbperfError):
    """The requested engine cannot run this policy on this installation."""


class HostError(TlbperfError):
    """A host run was asked for something this machine cannot give: an
    offline CPU, more threads than CPUs, a window of 0, an output that
    cannot be written."""


class HostUnavailable(TlbperfError):
    """The host backend cannot run here: the runner was not built, or this
    is not Linux."""
