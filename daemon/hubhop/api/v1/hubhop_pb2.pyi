from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("model", "protocol", "tier", "max_latency_ms", "lane", "chip", "budget", "deadline_ms", "explain", "spill")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    CHIP_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    SPILL_FIELD_NUMBER: _ClassVar[int]
    model: str
    protocol: str
    tier: str
    max_latency_ms: float
    lane: str
    chip: str
    budget: float
    deadline_ms: float
    explain: bool
    spill: str
    def __init__(self, model: _Optional[str] = ..., protocol: _Optional[str] = ..., tier: _Optional[str] = ..., max_latency_ms: _Optional[float] = ..., lane: _Optional[str] = ..., chip: _Optional[str] = ..., budget: _Optional[float] = ..., deadline_ms: _Optional[float] = ..., explain: _Optional[bool] = ..., spill: _Optional[str] = ...) -> None: ...

class ExpectedMs(_message.Message):
    __slots__ = ("network", "queue", "service", "total")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    network: float
    queue: float
    service: float
    total: float
    def __init__(self, network: _Optional[float] = ..., queue: _Optional[float] = ..., service: _Optional[float] = ..., total: _Optional[float] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("node", "backend", "path", "relayed", "one_way_ms", "estimated", "expected_ms", "reasons", "url")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RELAYED_FIELD_NUMBER: _ClassVar[int]
    ONE_WAY_MS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    node: str
    backend: str
    path: _containers.RepeatedScalarFieldContainer[str]
    relayed: bool
    one_way_ms: float
    estimated: bool
    expected_ms: ExpectedMs
    reasons: _containers.RepeatedScalarFieldContainer[str]
    url: str
    def __init__(self, node: _Optional[str] = ..., backend: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ..., relayed: _Optional[bool] = ..., one_way_ms: _Optional[float] = ..., estimated: _Optional[bool] = ..., expected_ms: _Optional[_Union[ExpectedMs, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ..., url: _Optional[str] = ...) -> None: ...

class RouteReply(_message.Message):
    __slots__ = ("node", "model", "protocol", "lane", "tier_asked", "bound_ms", "spill", "chosen", "tier", "spilled", "queued", "alternates", "rejected", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    TIER_ASKED_FIELD_NUMBER: _ClassVar[int]
    BOUND_MS_FIELD_NUMBER: _ClassVar[int]
    SPILL_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ALTERNATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: str
    model: str
    protocol: str
    lane: str
    tier_asked: str
    bound_ms: float
    spill: str
    chosen: Candidate
    tier: str
    spilled: bool
    queued: bool
    alternates: _containers.RepeatedCompositeFieldContainer[Candidate]
    rejected: _containers.RepeatedCompositeFieldContainer[Candidate]
    reason: str
    def __init__(self, node: _Optional[str] = ..., model: _Optional[str] = ..., protocol: _Optional[str] = ..., lane: _Optional[str] = ..., tier_asked: _Optional[str] = ..., bound_ms: _Optional[float] = ..., spill: _Optional[str] = ..., chosen: _Optional[_Union[Candidate, _Mapping]] = ..., tier: _Optional[str] = ..., spilled: _Optional[bool] = ..., queued: _Optional[bool] = ..., alternates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("name", "addr", "state", "incarnation", "record_version", "role", "region", "city", "http", "backends", "models", "coordinate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    RECORD_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    addr: str
    state: str
    incarnation: int
    record_version: int
    role: str
    region: str
    city: str
    http: str
    backends: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    coordinate: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., addr: _Optional[str] = ..., state: _Optional[str] = ..., incarnation: _Optional[int] = ..., record_version: _Optional[int] = ..., role: _Optional[str] = ..., region: _Optional[str] = ..., city: _Optional[str] = ..., http: _Optional[str] = ..., backends: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., coordinate: _Optional[_Iterable[float]] = ...) -> None: ...

class MembersReply(_message.Message):
    __slots__ = ("node", "gossip", "members")
    NODE_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    node: str
    gossip: bool
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, node: _Optional[str] = ..., gossip: _Optional[bool] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class TableRequest(_message.Message):
    __slots__ = ("model", "chip", "node", "role", "tier", "state")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHIP_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    chip: str
    node: str
    role: str
    tier: str
    state: str
    def __init__(self, model: _Optional[str] = ..., chip: _Optional[str] = ..., node: _Optional[str] = ..., role: _Optional[str] = ..., tier: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class LaneQueues(_message.Message):
    __slots__ = ("emergency", "standard", "batch")
    EMERGENCY_FIELD_NUMBER: _ClassVar[int]
    STANDARD_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    emergency: float
    standard: float
    batch: float
    def __init__(self, emergency: _Optional[float] = ..., standard: _Optional[float] = ..., batch: _Optional[float] = ...) -> None: ...

class RowLatency(_message.Message):
    __slots__ = ("one_way_ms", "tier", "source", "path")
    ONE_WAY_MS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    one_way_ms: float
    tier: str
    source: str
    path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, one_way_ms: _Optional[float] = ..., tier: _Optional[str] = ..., source: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ...) -> None: ...

class Rotation(_message.Message):
    __slots__ = ("state", "slots", "ejections", "back_in_s", "reason", "consecutive_failures", "consecutive_slow", "baseline_ms", "held_back", "failures", "slow")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_FIELD_NUMBER: _ClassVar[int]
    BACK_IN_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_SLOW_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MS_FIELD_NUMBER: _ClassVar[int]
    HELD_BACK_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    SLOW_FIELD_NUMBER: _ClassVar[int]
    state: str
    slots: int
    ejections: int
    back_in_s: float
    reason: str
    consecutive_failures: int
    consecutive_slow: int
    baseline_ms: float
    held_back: int
    failures: int
    slow: int
    def __init__(self, state: _Optional[str] = ..., slots: _Optional[int] = ..., ejections: _Optional[int] = ..., back_in_s: _Optional[float] = ..., reason: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., consecutive_slow: _Optional[int] = ..., baseline_ms: _Optional[float] = ..., held_back: _Optional[int] = ..., failures: _Optional[int] = ..., slow: _Optional[int] = ...) -> None: ...

class TableRow(_message.Message):
    __slots__ = ("node", "role", "region", "city", "state", "backend", "protocols", "models", "chip", "slots", "emergency_reserve", "busy", "free", "load", "queue", "service_ms", "price", "green_share", "alive", "latency", "rotation")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CHIP_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_RESERVE_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_MS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    GREEN_SHARE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    node: str
    role: str
    region: str
    city: str
    state: str
    backend: str
    protocols: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    chip: str
    slots: int
    emergency_reserve: int
    busy: float
    free: float
    load: float
    queue: LaneQueues
    service_ms: float
    price: float
    green_share: float
    alive: bool
    latency: RowLatency
    rotation: Rotation
    def __init__(self, node: _Optional[str] = ..., role: _Optional[str] = ..., region: _Optional[str] = ..., city: _Optional[str] = ..., state: _Optional[str] = ..., backend: _Optional[str] = ..., protocols: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., chip: _Optional[str] = ..., slots: _Optional[int] = ..., emergency_reserve: _Optional[int] = ..., busy: _Optional[float] = ..., free: _Optional[float] = ..., load: _Optional[float] = ..., queue: _Optional[_Union[LaneQueues, _Mapping]] = ..., service_ms: _Optional[float] = ..., price: _Optional[float] = ..., green_share: _Optional[float] = ..., alive: _Optional[bool] = ..., latency: _Optional[_Union[RowLatency, _Mapping]] = ..., rotation: _Optional[_Union[Rotation, _Mapping]] = ...) -> None: ...

class TableReply(_message.Message):
    __slots__ = ("node", "gossip", "filters", "rows_total", "rows")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    node: str
    gossip: bool
    filters: _containers.ScalarMap[str, str]
    rows_total: int
    rows: _containers.RepeatedCompositeFieldContainer[TableRow]
    def __init__(self, node: _Optional[str] = ..., gossip: _Optional[bool] = ..., filters: _Optional[_Mapping[str, str]] = ..., rows_total: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[TableRow, _Mapping]]] = ...) -> None: ...

class WatchTableRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TableSnapshot(_message.Message):
    __slots__ = ("node", "rows", "members", "decisions")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    node: str
    rows: _containers.RepeatedCompositeFieldContainer[TableRow]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, node: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[TableRow, _Mapping]]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class RowRemoved(_message.Message):
    __slots__ = ("node", "backend")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    node: str
    backend: str
    def __init__(self, node: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class MemberRemoved(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TableEvent(_message.Message):
    __slots__ = ("snapshot", "row", "row_removed", "member", "member_removed", "decision")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    ROW_REMOVED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REMOVED_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    snapshot: TableSnapshot
    row: TableRow
    row_removed: RowRemoved
    member: Member
    member_removed: MemberRemoved
    decision: Decision
    def __init__(self, snapshot: _Optional[_Union[TableSnapshot, _Mapping]] = ..., row: _Optional[_Union[TableRow, _Mapping]] = ..., row_removed: _Optional[_Union[RowRemoved, _Mapping]] = ..., member: _Optional[_Union[Member, _Mapping]] = ..., member_removed: _Optional[_Union[MemberRemoved, _Mapping]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class Alternate(_message.Message):
    __slots__ = ("node", "backend", "expected_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    backend: str
    expected_ms: float
    def __init__(self, node: _Optional[str] = ..., backend: _Optional[str] = ..., expected_ms: _Optional[float] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("node", "backend", "one_way_ms", "why")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ONE_WAY_MS_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    node: str
    backend: str
    one_way_ms: float
    why: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., backend: _Optional[str] = ..., one_way_ms: _Optional[float] = ..., why: _Optional[_Iterable[str]] = ...) -> None: ...

class DecisionReason(_message.Message):
    __slots__ = ("bound_ms", "queued", "expected_ms", "one_way_ms", "estimated", "alternates", "rejected", "refused")
    BOUND_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MS_FIELD_NUMBER: _ClassVar[int]
    ONE_WAY_MS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    ALTERNATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    bound_ms: float
    queued: bool
    expected_ms: ExpectedMs
    one_way_ms: float
    estimated: bool
    alternates: _containers.RepeatedCompositeFieldContainer[Alternate]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejected]
    refused: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, bound_ms: _Optional[float] = ..., queued: _Optional[bool] = ..., expected_ms: _Optional[_Union[ExpectedMs, _Mapping]] = ..., one_way_ms: _Optional[float] = ..., estimated: _Optional[bool] = ..., alternates: _Optional[_Iterable[_Union[Alternate, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[Rejected, _Mapping]]] = ..., refused: _Optional[_Iterable[str]] = ...) -> None: ...

class DecisionError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("request_id", "node", "client", "protocol", "model", "lane", "tier_asked", "tier_served", "spilled", "served_by", "backend", "path", "tries", "hedged", "outcome", "status", "ms", "reason", "error", "ts")
    class MsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    TIER_ASKED_FIELD_NUMBER: _ClassVar[int]
    TIER_SERVED_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TRIES_FIELD_NUMBER: _ClassVar[int]
    HEDGED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    node: str
    client: str
    protocol: str
    model: str
    lane: str
    tier_asked: str
    tier_served: str
    spilled: bool
    served_by: str
    backend: str
    path: _containers.RepeatedScalarFieldContainer[str]
    tries: int
    hedged: str
    outcome: str
    status: int
    ms: _containers.ScalarMap[str, float]
    reason: DecisionReason
    error: DecisionError
    ts: str
    def __init__(self, request_id: _Optional[str] = ..., node: _Optional[str] = ..., client: _Optional[str] = ..., protocol: _Optional[str] = ..., model: _Optional[str] = ..., lane: _Optional[str] = ..., tier_asked: _Optional[str] = ..., tier_served: _Optional[str] = ..., spilled: _Optional[bool] = ..., served_by: _Optional[str] = ..., backend: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ..., tries: _Optional[int] = ..., hedged: _Optional[str] = ..., outcome: _Optional[str] = ..., status: _Optional[int] = ..., ms: _Optional[_Mapping[str, float]] = ..., reason: _Optional[_Union[DecisionReason, _Mapping]] = ..., error: _Optional[_Union[DecisionError, _Mapping]] = ..., ts: _Optional[str] = ...) -> None: ...

class ExplainReply(_message.Message):
    __slots__ = ("node", "decision")
    NODE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    node: str
    decision: Decision
    def __init__(self, node: _Optional[str] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...
