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
    fit_ridge,
    make_attribution,
)
from scarce.feedback.buffer import DelayedPolicy, PendingBuffer, Ready
from scarce.feedback.delay import DelayModel, FixedDelay, GeometricDelay, KernelDelay
from scarce.feedback.kernels import KERNEL_FAMILIES, DelayKernel, kernel_family

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
    "ObservationLog",
    "PendingBuffer",
    "Ready",
    "fit_ridge",
    "kernel_family",
    "make_attribution",
]
