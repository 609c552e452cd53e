"""Delayed feedback: decision ids and the pending-decision buffer, delay kernels and delay
models for simulation, and attribution of aggregated, overlapping outcomes to past
allocations (:mod:`scarce.feedback.attribution`)."""

from scarce.feedback.attribution import (
    ATTRIBUTIONS,
    AllocationLog,
    CompletedMass,
    DelayAgnostic,
    DelayAttribution,
    KernelConvolvedLS,
    ObservationLog,
    convolve_outcomes,
    fit_ridge,
    make_attribution,
)
from scarce.feedback.buffer import DelayedPolicy, PendingBuffer, Ready
from scarce.feedback.delay import DelayModel, FixedDelay, GeometricDelay, KernelDelay
from scarce.feedback.kernels import (
    KERNEL_FAMILIES,
    DelayKernel,
    KernelSpec,
    kernel_family,
    kernel_from_spec,
    kernel_to_spec,
    kernels_from_spec,
)

__all__ = [
    "ATTRIBUTIONS",
    "AllocationLog",
    "CompletedMass",
    "DelayAgnostic",
    "DelayAttribution",
    "DelayKernel",
    "DelayedPolicy",
    "DelayModel",
    "FixedDelay",
    "GeometricDelay",
    "KERNEL_FAMILIES",
    "KernelConvolvedLS",
    "KernelDelay",
    "KernelSpec",
    "ObservationLog",
    "convolve_outcomes",
    "PendingBuffer",
    "Ready",
    "fit_ridge",
    "kernel_family",
    "kernel_from_spec",
    "kernel_to_spec",
    "kernels_from_spec",
    "make_attribution",
]
