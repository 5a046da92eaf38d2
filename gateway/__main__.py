"""``python -m gateway``: serve the gateway (what ``apt-model gateway serve`` becomes)."""

from gateway.server import main

main()
