"""aiohttp-minimal: the floor, the least a Python reverse proxy on aiohttp and uvloop can do.

One process, one pooled keep-alive client session; the request body is handed on as it
arrives and the answer is written back as it comes, so a 200 MB upload is never held whole.
Hop-by-hop headers are dropped both ways. No routing, no admission, no error mapping: whatever
hubhop costs above this is the price of what it does besides forwarding.

Standalone (aiohttp, and uvloop when installed): `python minimal_proxy.py --host H --upstream
URL`; prints `minimal-proxy ready URL` once listening and stops on SIGTERM.
"""

import argparse
import asyncio
import signal
from collections.abc import Mapping

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host"}  # fmt: skip
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def end_to_end(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP]


async def forward(request: web.Request) -> web.StreamResponse:
    async with request.app[SESSION].request(
        request.method, request.app[UPSTREAM] + request.rel_url.raw_path_qs,
        headers=end_to_end(request.headers), allow_redirects=False,
        data=request.content if request.body_exists else None,
        skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
    ) as upstream:  # fmt: skip
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=end_to_end(upstream.headers)
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def serve(host: str, port: int, upstream: str) -> None:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256)
    app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"minimal-proxy ready http://{host}:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the backend")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.upstream))
    else:
        uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
