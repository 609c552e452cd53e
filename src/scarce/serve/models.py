"""The request and response models of the HTTP API (pydantic): the request schemas state the
exact shapes of the served policy, so clients and fuzzers see them in the OpenAPI schema; and
the turning of validation errors into ``{"field", "message"}`` items."""

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from scarce.serve.config import MAX_ABS, ServiceConfig

ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,128}$"
GROUP_PATTERN = r"^[A-Za-z0-9._:@/+= -]{1,100}$"
_MAX_VECTOR = 4096

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=MAX_ABS)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DecisionResponse(BaseModel):
    event_id: str
    action: int = Field(ge=0)
    probability: Probability
    probabilities: list[Probability]
    model_version: int = Field(ge=0)


class RewardResponse(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "ignored", "late"]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    policy: str
    model_version: int
    store: str
    quarantined: int = Field(ge=0, description="joined events no model could learn")


class SnapshotResponse(BaseModel):
    version: int
    model_version: int
    checksum: str


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem] = []


def _field_name(loc: tuple[Any, ...]) -> str:
    # drop "body" and pydantic's union-member tags ("constrained-float", "list[float]", ...)
    parts = [p for p in loc if p != "body" and not (isinstance(p, str) and _is_union_tag(p))]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def _is_union_tag(part: str) -> bool:
    return "[" in part or "-" in part or part in ("float", "int", "str", "bool")


def validation_items(errors: Sequence[Any]) -> list[tuple[str, str]]:
    """One message per field; for union fields (scalar or list) keep the informative branch."""
    by_field: dict[str, list[str]] = {}
    if len(errors) > 1:
        # a list sent to a "number or list" field also fails the number branch: drop that noise
        errors = [
            e
            for e in errors
            if not (str(e.get("type", "")).endswith("_type") and isinstance(e.get("input"), list))
        ] or list(errors)
    for e in errors:
        if e.get("type") == "json_invalid":
            loc = tuple(e.get("loc", ()))
            where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            reason = (e.get("ctx") or {}).get("error", "")
            by_field.setdefault("body", []).append(f"invalid JSON{where}: {reason}".rstrip(": "))
            continue
        by_field.setdefault(_field_name(tuple(e.get("loc", ()))), []).append(
            str(e.get("msg", "invalid"))
        )
    items = []
    for field, msgs in by_field.items():
        useful = [m for m in msgs if "valid list" not in m] or msgs
        items.append((field, "; ".join(dict.fromkeys(useful))))
    return items


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; bools are not numbers here
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def request_models(cfg: ServiceConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(DecisionRequest, RewardRequest)`` for this service: the OpenAPI schema states the exact
    shapes (``d`` features, ``K`` actions, ``reward_dim``), so clients and fuzzers see them."""
    d, K, dim = cfg.n_features, cfg.n_actions, cfg.reward_dim
    ActionId = Annotated[int, Field(ge=0, lt=K), BeforeValidator(_integral)]
    common: dict[str, Any] = {
        "eligible": (
            list[ActionId] | None,
            Field(
                None,
                min_length=1,
                max_length=K,
                description="ids of the actions that may be chosen (default: all), no repeats",
                json_schema_extra={"uniqueItems": True},
            ),
        ),
        "group": (
            str | None,
            Field(None, pattern=GROUP_PATTERN, description="the case's group (quotas, export)"),
        ),
        "event_id": (
            str | None,
            Field(
                None,
                pattern=ID_PATTERN,
                description="caller's id of the case; a retry with the same id is safe",
            ),
        ),
    }
    bound = cfg.max_abs_feature
    Feature = Annotated[float, Field(allow_inf_nan=False, ge=-bound, le=bound)]
    if cfg.features == "shared":
        features: dict[str, Any] = {
            "context": (
                list[Feature],
                Field(min_length=d, max_length=d, description=f"the case's {d} features"),
            )
        }
    else:
        Row = Annotated[list[Feature], Field(min_length=d, max_length=d)]
        features = {
            "action_features": (
                list[Row],
                Field(min_length=K, max_length=K, description=f"({K}, {d}) features per action"),
            )
        }
    decision = create_model(
        "DecisionRequest", __base__=Strict, __doc__="One case to decide.", **features, **common
    )
    lo, hi = (None, None)
    if dim == 1 and cfg.make_policy().reward_bounds is not None:
        lo, hi = cfg.make_policy().reward_bounds  # type: ignore[misc]
    lo = -MAX_ABS if lo is None else lo
    hi = MAX_ABS if hi is None else hi
    Value = Annotated[float, Field(allow_inf_nan=False, ge=lo, le=hi)]
    value_type: Any = Value | Annotated[list[Value], Field(min_length=1, max_length=1)]
    if dim > 1:
        value_type = Annotated[list[Finite], Field(min_length=dim, max_length=dim)]
    reward = create_model(
        "RewardRequest",
        __base__=Strict,
        __doc__="An outcome for a logged decision.",
        event_id=(str, Field(pattern=ID_PATTERN, description="the decision's event id")),
        value=(value_type, Field(description=f"reward: a number or {dim} numbers")),
        cost=(
            NonNegative
            | Annotated[list[NonNegative], Field(min_length=1, max_length=_MAX_VECTOR)]
            | None,
            Field(None, description="realised cost, >= 0"),
        ),
    )
    return decision, reward
