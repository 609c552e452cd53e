"""The request and response models of the HTTP API (pydantic): the request schemas state the
exact shapes of the served policy, so clients and fuzzers see them in the OpenAPI schema; and
the turning of validation errors into ``{"field", "message"}`` items."""

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from scarce.serve.config import MAX_ABS, ServiceConfig
from scarce.serve.validation import KEYWORD_SHAPES

ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,128}$"
GROUP_PATTERN = r"^[A-Za-z0-9._:@/+= -]{1,100}$"
_MAX_VECTOR = 4096

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=MAX_ABS)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; bools are not numbers here
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SupportResponse(BaseModel):
    support: list[int] = Field(description="the actions with positive probability, ascending")
    probabilities: list[Probability] = Field(description="their probabilities")


class DecisionResponse(BaseModel):
    event_id: str
    action: Annotated[int, Field(ge=0)] | list[int] = Field(
        description="the action id (a list of levels, one per item, for 'levels' policies)"
    )
    probability: Probability | None = Field(
        description="its probability (null where the policy cannot say)"
    )
    probabilities: list[Probability] | None = Field(
        description="the distribution over the actions allowed for this case"
    )
    model_version: int = Field(ge=0)
    policy_version: int = Field(ge=1, description="the policy version that decided")
    support: SupportResponse | None = Field(
        None,
        description="catalog policies: the distribution's support, given instead of "
        "'probabilities' (which is then null)",
    )


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


class GuardSpec(Strict):
    estimator: Literal["ips", "snips", "dr"] = "snips"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_events: Annotated[int, Field(ge=1, le=10_000_000), BeforeValidator(integral)] = 30


class PromotionRequest(Strict):
    """One of ``config`` (a candidate policy TOML as a JSON object; it inherits the served
    ``[service]`` and budgets), ``version`` (an earlier version: a rollback) or ``shadow``."""

    config: dict[str, Any] | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    version: Annotated[int, Field(ge=1), BeforeValidator(integral)] | None = None
    shadow: str | None = Field(None, max_length=100)
    guard: GuardSpec | None = None
    note: str | None = Field(None, max_length=500)


class PromotionResponse(BaseModel):
    version: int
    name: str
    previous: int
    model_version: int
    guard: dict[str, Any] | None = None


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


def _keyword_field(name: str, K: int, what: str) -> tuple[Any, Any]:
    """The request field of a policy keyword (its per-case value; see
    :data:`scarce.serve.validation.KEYWORD_SHAPES`)."""
    kind = KEYWORD_SHAPES.get(name)
    if kind == "bool":
        kind_type: Any = bool
        text = "true or false"
    elif kind == "int":
        kind_type = Annotated[int, Field(ge=0), BeforeValidator(integral)]
        text = "an id >= 0"
    elif kind == "number":
        kind_type = Finite
        text = "a number"
    elif kind == "items":
        kind_type = Annotated[list[Finite], Field(min_length=K, max_length=K)]
        text = f"{K} numbers"
    else:
        Row = Annotated[list[Finite], Field(max_length=_MAX_VECTOR)]
        kind_type = Finite | Row | Annotated[list[Row], Field(max_length=_MAX_VECTOR)]
        text = "a number or a list of numbers"
    return (kind_type | None, Field(None, description=f"{what} the policy declares ({text})"))


def request_models(cfg: ServiceConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(DecisionRequest, RewardRequest)`` for this service: the OpenAPI schema states the exact
    shapes (``d`` features, ``K`` actions, ``reward_dim``, the policy's keywords), so clients
    and fuzzers see them."""
    d, K, dim = cfg.n_features, cfg.n_actions, cfg.reward_dim or 1
    traits = cfg.traits
    ActionId = Annotated[int, Field(ge=0, lt=K), BeforeValidator(integral)]
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
    for name in traits.decide_keywords:
        common[name] = _keyword_field(name, K, "decision-time context")
    decision = create_model(
        "DecisionRequest", __base__=Strict, __doc__="One case to decide.", **features, **common
    )
    lo, hi = (None, None)
    if dim == 1 and cfg.make_policy().reward_bounds is not None and traits.reward_kind != "vector":
        lo, hi = cfg.make_policy().reward_bounds  # type: ignore[misc]
    lo = -MAX_ABS if lo is None else lo
    hi = MAX_ABS if hi is None else hi
    Value = Annotated[float, Field(allow_inf_nan=False, ge=lo, le=hi)]
    value_type: Any = Value | Annotated[list[Value], Field(min_length=1, max_length=1)]
    if dim > 1:
        value_type = Annotated[list[Finite], Field(min_length=dim, max_length=dim)]
    feedback = {
        name: _keyword_field(name, K, "feedback")
        for name in traits.update_keywords
        if name != "costs"
    }
    m = traits.n_resources
    cost_text = (
        f"realised cost, >= 0: {m} number(s), one per resource of the policy's budget (required "
        "when the decision reserved a positive cost bound)"
        if m
        else "realised cost, >= 0"
    )
    reward = create_model(
        "RewardRequest",
        __base__=Strict,
        __doc__="An outcome for a logged decision.",
        event_id=(str, Field(pattern=ID_PATTERN, description="the decision's event id")),
        value=(
            value_type,
            Field(
                description=f"reward: {dim} numbers (one per objective)"
                if traits.reward_kind == "vector"
                else f"reward: a number or {dim} numbers"
            ),
        ),
        cost=(
            NonNegative
            | Annotated[list[NonNegative], Field(min_length=1, max_length=_MAX_VECTOR)]
            | None,
            Field(None, description=cost_text),
        ),
        **feedback,
    )
    return decision, reward
