#!/usr/bin/env python3
"""Calls adscope analytics with Python's grpcio, a client written outside this repo.

Stubs are generated at run time from the repo's proto/ folder, so the check is
against the published contract rather than anything the Rust side generated.
Prints one "ok <check>" line per passing check and exits non-zero on the first
mismatch.

Usage: ADSCOPE_TOKEN_A=... ADSCOPE_TOKEN_B=... client.py --addr HOST:PORT
           --campaign-id ID --campaign-name NAME --tenant-a ID --tenant-b ID

The bearer tokens come from the environment so they never show in a process
listing.
"""

import argparse
import importlib
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

# grpcio ships no grpc.health.v1 stubs and grpcio-health-checking is a separate
# package, so a minimal copy of the standard definition is compiled instead.
HEALTH_PROTO = """\
syntax = "proto3";

package grpc.health.v1;

message HealthCheckRequest {
  string service = 1;
}

message HealthCheckResponse {
  enum ServingStatus {
    UNKNOWN = 0;
    SERVING = 1;
    NOT_SERVING = 2;
    SERVICE_UNKNOWN = 3;
  }
  ServingStatus status = 1;
}

service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
}
"""

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_ROOT = os.path.join(REPO, "proto")
CAMPAIGN_PROTO = "adscope/analytics/v1/campaign.proto"


class Mismatch(Exception):
    pass


def bundled_proto_dir():
    """The well-known types (google/protobuf/*.proto) shipped inside grpc_tools."""
    try:
        from importlib.resources import files

        return str(files("grpc_tools") / "_proto")
    except (ImportError, TypeError):
        import pkg_resources

        return pkg_resources.resource_filename("grpc_tools", "_proto")


def compile_protos(out):
    # The file is named after nothing in "grpc": protoc names Python modules
    # after the file path, and grpc/health/... would shadow grpcio's own package.
    # The proto package, which sets the wire name, stays grpc.health.v1.
    src = os.path.join(out, "src")
    gen = os.path.join(out, "gen")
    os.makedirs(src)
    os.makedirs(gen)
    with open(os.path.join(src, "interop_health.proto"), "w") as f:
        f.write(HEALTH_PROTO)
    for root, proto in ((src, "interop_health.proto"), (PROTO_ROOT, CAMPAIGN_PROTO)):
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{bundled_proto_dir()}",
            f"--python_out={gen}",
            f"--grpc_python_out={gen}",
            proto,
        ]
        if protoc.main(args) != 0:
            raise Mismatch(f"protoc failed on {proto}")
    # The generated modules import each other by their path under gen/.
    sys.path.insert(0, gen)
    return tuple(
        importlib.import_module(name)
        for name in (
            "interop_health_pb2",
            "interop_health_pb2_grpc",
            "adscope.analytics.v1.campaign_pb2",
            "adscope.analytics.v1.campaign_pb2_grpc",
        )
    )


def expect_code(label, call, code):
    try:
        response = call()
    except grpc.RpcError as err:
        if err.code() != code:
            raise Mismatch(f"{label}: expected {code.name}, got {err.code().name}: {err.details()}")
        print(f"ok {label}: {code.name}", flush=True)
        return
    raise Mismatch(f"{label}: expected {code.name}, got a response: {response}")


def metadata(token, tenant):
    return (("authorization", f"Bearer {token}"), ("x-tenant-id", tenant))


def run(args, stubs):
    health_pb2, health_grpc, campaign_pb2, campaign_grpc = stubs
    with grpc.insecure_channel(args.addr) as channel:
        health = health_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            except grpc.RpcError as err:
                status = f"{err.code().name}: {err.details()}"
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            if time.monotonic() > deadline:
                raise Mismatch(f"health: not SERVING within 10 s, last: {status}")
            time.sleep(0.2)
        print("ok health: SERVING", flush=True)

        campaigns = campaign_grpc.CampaignServiceStub(channel)
        get = campaign_pb2.GetCampaignRequest(id=args.campaign_id)

        got = campaigns.GetCampaign(
            get, metadata=metadata(args.token_a, args.tenant_a), timeout=10
        ).campaign
        if got.id != args.campaign_id or got.name != args.campaign_name:
            raise Mismatch(f"own campaign: expected {args.campaign_id} {args.campaign_name!r}, got {got}")
        print(f"ok own campaign: {got.name}", flush=True)

        expect_code(
            "other tenant",
            lambda: campaigns.GetCampaign(
                get, metadata=metadata(args.token_b, args.tenant_b), timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        expect_code(
            "no metadata",
            lambda: campaigns.GetCampaign(get, timeout=10),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        expect_code(
            "foreign tenant header",
            lambda: campaigns.GetCampaign(
                get, metadata=metadata(args.token_a, args.tenant_b), timeout=10
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("addr", "campaign-id", "campaign-name", "tenant-a", "tenant-b"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    for name in ("token_a", "token_b"):
        value = os.environ.get(f"ADSCOPE_{name.upper()}")
        if not value:
            parser.error(f"ADSCOPE_{name.upper()} must hold a bearer token")
        setattr(args, name, value)
    with tempfile.TemporaryDirectory(prefix="adscope-interop-") as out:
        try:
            run(args, compile_protos(out))
        except Mismatch as err:
            print(f"FAIL {err}", file=sys.stderr, flush=True)
            return 1
        except grpc.RpcError as err:
            print(f"FAIL unexpected {err.code().name}: {err.details()}", file=sys.stderr, flush=True)
            return 1
    print("ok all checks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
