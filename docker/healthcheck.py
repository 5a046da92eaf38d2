"""Container health probe: exit 0 when this container's gRPC server reports SERVING.

Docker's HEALTHCHECK runs it inside the container (`python3 /app/healthcheck.py`); it asks
grpc.health.v1.Health/Check for the whole server ("") on the port of APT_LISTEN. Health calls
need no token (the runtime's auth interceptor exempts them), so the probe carries no secret.
"""

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    port = os.environ.get("APT_LISTEN", "0.0.0.0:50051").rsplit(":", 1)[-1]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
