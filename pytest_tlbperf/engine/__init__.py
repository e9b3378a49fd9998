"""The engines that run a compiled workload program on a modeled machine."""
