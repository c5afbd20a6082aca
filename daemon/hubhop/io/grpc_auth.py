"""Who is calling hubhop's gRPC server, and what they may ask: the HTTP endpoint's rules, as gRPC
statuses.

Every servicer on the gRPC server (hubhop.v1.Hubhop here, the KServe v2 inference service) calls
`authorize(context, state)` first and works with the config it returns. Health and reflection
call nothing: a load balancer or grpcurl holds no token, as HTTP's health probes need none.

Rules:
- With `[[tokens]]` configured, a client is known by its `authorization: Bearer TOKEN` metadata
  (hubhop.core.client_tokens.identify, the HTTP endpoint's check): a malformed or unknown token is
  UNAUTHENTICATED, never taken as anonymous; no token is the listener's policy (`[routing]
  anonymous`) or UNAUTHENTICATED. The token's client gets its routing policy
  (`EndpointState.config_for`). Without tokens the metadata is not hubhop's business.
- Rate limits are the HTTP endpoint's buckets (`EndpointState.rate_wait`): a gRPC call and an
  HTTP request of one client draw on one bucket. Over it: RESOURCE_EXHAUSTED with the wait in
  trailing metadata, `retry-after` in whole seconds as HTTP's Retry-After, and
  `grpc-retry-pushback-ms`, which a gRPC client with a retry policy honours by itself.
- A hint that is wrong is INVALID_ARGUMENT, one the client's policy does not allow (a lane, a
  tier, a budget over its cap, a model outside its `allowed_models`) PERMISSION_DENIED, each with
  the HTTP endpoint's message naming the field (`grpc_status(HintError.status)`).
- A draining node refuses new work with UNAVAILABLE, which tells a client to try another node.
- Every refusal aborts the call with a status and a message; the server keeps serving.
"""

from __future__ import annotations

import grpc

from hubhop.core.client_tokens import TokenError, identify
from hubhop.core.config import NodeConfig
from hubhop.core.rate_limit import ANONYMOUS, retry_after_s
from hubhop.io.local_endpoint import EndpointState

AUTHORIZATION_KEY = "authorization"  # gRPC metadata keys are lower-case
RETRY_AFTER_KEY = "retry-after"
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
NO_TOKEN = "this node serves only clients with a bearer token"
DRAINING = "this node is shutting down; retry on another"
# The HTTP endpoint's statuses as gRPC codes (gRPC's own HTTP mapping, read the other way).
CODE_OF_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


async def authorize(context: grpc.aio.ServicerContext, state: EndpointState) -> NodeConfig:
    """The config as this call's client sees it (its token's routing policy), after its token
    and its rate limit are checked; aborts the call (UNAUTHENTICATED, RESOURCE_EXHAUSTED)
    otherwise."""
    config, _ = await authorize_client(context, state)
    return config


async def authorize_client(
    context: grpc.aio.ServicerContext, state: EndpointState
) -> tuple[NodeConfig, str]:
    """`authorize`, and the client's name: its token's, or "anonymous"."""
    config = state.config
    client: str | None = None  # whose bucket the call draws on; None: no limit applies
    if config.tokens:
        try:
            token = identify(config.tokens, _metadata_value(context, AUTHORIZATION_KEY))
        except TokenError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if token is None:
            if not config.routing.anonymous:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
            client = ANONYMOUS
        else:
            config, client = state.config_for(token), token.name
    elif config.routing.rate_limit.limited:
        client = ANONYMOUS
    if client is not None:
        wait = state.rate_wait(client)
        if wait > 0.0:
            message, trailing = rate_limited(config, wait)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message, trailing)
    return config, ANONYMOUS if client is None else client


def rate_limited(config: NodeConfig, wait_s: float) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The message and trailing metadata of a call over its client's rate limit."""
    limit = config.routing.rate_limit
    seconds = retry_after_s(wait_s)
    message = (
        f"over this client's rate limit of {limit.rate_per_s:g} requests a second "
        f"(bursts of {limit.burst}); retry in {seconds} s"
    )
    return message, ((RETRY_AFTER_KEY, str(seconds)), (RETRY_PUSHBACK_KEY, str(seconds * 1000)))


def grpc_status(http_status: int) -> grpc.StatusCode:
    """The gRPC status that says what `http_status` says over HTTP (a HintError's status:
    PERMISSION_DENIED for what the client's policy does not allow, INVALID_ARGUMENT for a
    wrong value)."""
    code = CODE_OF_HTTP_STATUS.get(http_status)
    if code is None:
        code = grpc.StatusCode.INTERNAL if http_status >= 500 else grpc.StatusCode.INVALID_ARGUMENT
    return code


async def refuse_while_draining(context: grpc.aio.ServicerContext, state: EndpointState) -> None:
    """UNAVAILABLE while the node drains: new work goes to another node."""
    if state.draining:
        await context.abort(grpc.StatusCode.UNAVAILABLE, DRAINING)
