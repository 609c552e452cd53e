"""``POST /v1/allocations``: the cohort endpoint of an ``"allocation"`` policy (see
:mod:`scarce.serve.cohorts`), with request and response models that state the served
policy's exact shapes (``d`` features, ``K`` actions, ``R = K - 1`` resources, ``max_batch``
cases)."""

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field, create_model
from starlette.concurrency import run_in_threadpool

from scarce.serve.models import GROUP_PATTERN, ID_PATTERN, ErrorResponse, Strict, integral
from scarce.serve.service import DecisionService


class Allocation(BaseModel):
    event_id: str
    action: int = Field(ge=0, description="0: nothing; r + 1: resource r")
    probability: float | None = Field(
        ge=0.0, le=1.0, description="the probability of this action (null: unknown)"
    )


class AllocationResponse(BaseModel):
    cohort_id: str
    round: int = Field(ge=0, description="the cohort's round (the policy's decisions so far)")
    model_version: int = Field(ge=0, description="joined events the deciding model had learned")
    policy_version: int = Field(ge=1)
    allocations: list[Allocation] = Field(description="one per case, in request order")


def allocation_request(service: DecisionService) -> type[BaseModel]:
    """The request model of the served configuration."""
    cfg = service.config
    d, K = cfg.n_features, cfg.n_actions
    bound = cfg.max_abs_feature
    Feature = Annotated[float, Field(allow_inf_nan=False, ge=-bound, le=bound)]
    ActionId = Annotated[int, Field(ge=0, lt=K), BeforeValidator(integral)]
    Id = Annotated[int, Field(ge=0), BeforeValidator(integral)]
    Count = Annotated[int, Field(ge=0, le=1_000_000_000), BeforeValidator(integral)]
    fields: dict[str, Any] = {
        "context": (
            list[Feature],
            Field(min_length=d, max_length=d, description=f"the case's {d} features"),
        ),
        "eligible": (
            list[ActionId] | None,
            Field(
                None,
                min_length=1,
                max_length=K,
                description="ids of the actions this case may get (default: all; with "
                "capacities it must include 0, nothing)",
                json_schema_extra={"uniqueItems": True},
            ),
        ),
        "group": (
            str | None,
            Field(None, pattern=GROUP_PATTERN, description="the case's group label (exports)"),
        ),
        "event_id": (
            str | None,
            Field(None, pattern=ID_PATTERN, description="the case's event id (for its reward)"),
        ),
    }
    declared = cfg.traits.decide_keywords
    if "groups" in declared:
        fields["groups"] = (Id | None, Field(None, description="the fairness group id"))
    if "units" in declared:
        fields["units"] = (Id | None, Field(None, description="who the case is, across rounds"))
    case = create_model("AllocationCase", __base__=Strict, __doc__="One case.", **fields)
    PerResource = Annotated[list[Count], Field(min_length=K - 1, max_length=K - 1)]
    return create_model(  # type: ignore[no-any-return]
        "AllocationRequest",
        __base__=Strict,
        __doc__="A cohort to allocate resources over.",
        cases=(list[case], Field(min_length=1, max_length=cfg.max_batch)),  # type: ignore[valid-type]
        capacities=(
            PerResource | None,
            Field(None, description=f"{K - 1} counts: how many cases may get each resource"),
        ),
        cooldowns=(
            PerResource | None,
            Field(None, description=f"{K - 1} counts: rounds before a resource is given again"),
        ),
        cohort_id=(
            str | None,
            Field(None, pattern=ID_PATTERN, description="the cohort's id; a retry is safe"),
        ),
    )


def add_allocation_route(
    app: FastAPI,
    service: DecisionService,
    *,
    dependencies: list[Any],
    key_id: Callable[[Request], str | None],
    on_done: Callable[[int, float], None],
) -> None:
    """Register ``POST /v1/allocations`` on ``app``. ``key_id(request)``: the caller's key id
    to record; ``on_done(n_cases, seconds)``: metrics of an answered cohort."""
    AllocationRequest = allocation_request(service)
    conflict = {409: {"model": ErrorResponse, "description": "cohort or event id reused"}}

    @app.post(
        "/v1/allocations",
        dependencies=dependencies,
        responses=conflict,
        response_model=AllocationResponse,
    )
    async def post_allocation(req: AllocationRequest, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        """Allocate the resources over a cohort (an 'allocation' policy): every case is
        decided together, under the round's capacities, and logged as a decision of its own
        (reward each through POST /v1/rewards), all or nothing."""
        t0 = time.perf_counter()
        body = req.model_dump()  # type: ignore[attr-defined]
        out = await run_in_threadpool(
            partial(
                service.allocate,
                body["cases"],
                capacities=body["capacities"],
                cooldowns=body["cooldowns"],
                cohort_id=body["cohort_id"],
                key_id=key_id(request),
            )
        )
        on_done(len(out.allocations), time.perf_counter() - t0)
        return JSONResponse(out.to_dict())
