"""splitmix64: the one PRNG of the model, written so that C gives the same bits.

Each consumer gets its own *stream*, derived from (seed, stream id), so the
workload a seed describes does not depend on how many random numbers the
machine consumed: two policies run with the same seed see the same workload
(common random numbers, so comparisons can be paired by seed).
"""

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

# Stream ids (part of the engine ABI: the native engine uses the same values).
STREAM_WORKLOAD = 1
STREAM_MACHINE = 2
STREAM_VCPU = 0x100  # + cpu: one stream per vCPU for its preemption windows


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_state(seed: int, stream: int) -> int:
    """Initial state of stream `stream` for `seed` (both non-negative ints)."""
    return mix64(((seed & MASK64) * GOLDEN + stream * 0xD1B54A32D192ED03) & MASK64)


class Stream:
    """A splitmix64 stream. `below(n)` is next() % n: a tiny bias, but the
    same bias in both engines, and the model needs reproducibility, not
    cryptographic uniformity."""

    __slots__ = ("state",)

    def __init__(self, seed: int, stream: int):
        self.state = stream_state(seed, stream)

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & MASK64
        return mix64(self.state)

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        return self.next() % n

    def between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent
