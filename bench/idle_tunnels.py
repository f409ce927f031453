#!/usr/bin/env python3
"""Hold many idle agent tunnels to a Ward gateway from one process, to measure the gateway's memory
per idle tunnel at a scale where one `ward agent up` process per tunnel would be too heavy.

Each tunnel is what an idle `ward agent up` keeps: TCP, TLS 1.3 with the device's certificate
(ALPN h2), the HTTP/2 preface with the agent's settings (stream window 4 MiB, connection window
16 MiB), then nothing but answers to the gateway's SETTINGS and PINGs, and a PING of its own every
10 s like the agent. Certificates are taken round-robin from the given agent state directories.

usage: idle_tunnels.py HOST PORT N MAX_SECONDS CONCURRENCY STATE_DIR...
At most CONCURRENCY handshakes are in flight at once (1: one after the other, so the figure is the
steady state rather than the peak of many simultaneous handshakes). Prints "READY <open> <failed>"
once every connection attempt is done; exits on SIGTERM or after MAX_SECONDS.
"""
import asyncio
import os
import signal
import ssl
import struct
import sys

HOST, PORT, N, MAX_S = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
CONCURRENCY = int(sys.argv[5])
DIRS = sys.argv[6:]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
STREAM_WINDOW, CONNECTION_WINDOW = 4 << 20, 16 << 20


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


SETTINGS = frame(4, 0, 0, struct.pack(">HI", 2, 0) + struct.pack(">HI", 4, STREAM_WINDOW))  # no push
WINDOW = frame(8, 0, 0, struct.pack(">I", CONNECTION_WINDOW - 65535))


def context(d):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(d, "gateway-ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "device.crt"), os.path.join(d, "device.key"))
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def tunnel(ctx, ready, gate):
    try:
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, PORT, ssl=ctx, server_hostname=HOST), 15)
            writer.write(PREFACE + SETTINGS + WINDOW)
            await writer.drain()
            # The gateway authenticates after the handshake: count the tunnel once it has answered.
            head = await asyncio.wait_for(reader.readexactly(9), 15)
    except Exception:
        ready.put_nowait(False)
        return
    ready.put_nowait(True)

    async def pinger():
        while True:
            await asyncio.sleep(10)
            writer.write(frame(6, 0, 0, b"wardbnch"))
            await writer.drain()

    ping_task = asyncio.create_task(pinger())
    try:
        while True:
            n = int.from_bytes(head[:3], "big")
            ftype, flags = head[3], head[4]
            payload = await reader.readexactly(n) if n else b""
            if ftype == 4 and not flags & 1:
                writer.write(frame(4, 1, 0))
            elif ftype == 6 and not flags & 1:
                writer.write(frame(6, 1, 0, payload))
            elif ftype == 7:
                break
            await writer.drain()
            head = await reader.readexactly(9)
    except Exception:
        pass
    finally:
        ping_task.cancel()
        writer.close()


async def main():
    ctxs = [context(d) for d in DIRS]
    ready, gate = asyncio.Queue(), asyncio.Semaphore(CONCURRENCY)
    tasks = [asyncio.create_task(tunnel(ctxs[i % len(ctxs)], ready, gate)) for i in range(N)]
    ok = 0
    for _ in range(N):
        ok += await ready.get()
    print(f"READY {ok} {N - ok}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), MAX_S)
    except asyncio.TimeoutError:
        pass
    for t in tasks:
        t.cancel()


asyncio.run(main())
