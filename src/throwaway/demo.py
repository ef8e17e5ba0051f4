"""The seed's demo: an agent whose sandbox can read this machine's public IP.

    throwaway run --app throwaway.demo:agent \\
        "Figure out the current ip address and make me a picture of it."

The guest has no network; reading ``/network/current-ip`` makes the host look
the address up (an HTTPS request the host makes, not the guest).
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request

from .durable import Agent

IP_SERVICE = os.environ.get("THROWAWAY_IP_SERVICE", "https://api.ipify.org")

agent = Agent("demo")


@agent.fs.file("/network/current-ip", description="this machine's public IP address (looked up when read)")
async def current_ip() -> str:
    """The public IP, from an IP echo service; the LAN address if that is unreachable."""
    try:
        return await asyncio.to_thread(_fetch, IP_SERVICE)
    except OSError:
        return _local_address() + "\n"


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read(64).decode().strip() + "\n"


def _local_address() -> str:
    # Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
