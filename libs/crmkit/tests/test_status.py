"""CrmError ⇄ gRPC status with rich details, without a server (a real server: test_grpc.py)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crmkit import errors
from crmkit.grpc.status import STATUS_DETAILS_KEY, code_of, from_rpc_error, to_status_details

CASES: list[tuple[errors.CrmError, grpc.StatusCode]] = [
    (errors.InvalidArgument("name: must not be empty", metadata={"entity": "customer"},
                            violations=[errors.FieldViolation("name", "must not be empty"),
                                        errors.FieldViolation("contacts[0].email", "not an email")]),
     grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidArgument.of("credit_limit", "must be positive"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("customer c-1 not found", metadata={"id": "c-1"}), grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists("tax id taken", reason="DUPLICATE_TAX_ID", metadata={"tax_id": "9131"}),
     grpc.StatusCode.ALREADY_EXISTS),
    (errors.Conflict("contract is signed", reason="CONTRACT_SIGNED"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.StaleVersion("version 3 is not current", metadata={"current": "4"}), grpc.StatusCode.ABORTED),
    (errors.PermissionDenied("not your customer"), grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated("no principal"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.Unavailable("SAP is down", reason="SAP_UNAVAILABLE"), grpc.StatusCode.UNAVAILABLE),
]


def _rpc_error(code: grpc.StatusCode, message: str, details: bytes | None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if details is not None:
        trailing.add(STATUS_DETAILS_KEY, details)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message)


def _case_id(value: object) -> str:
    return type(value).__name__ if isinstance(value, errors.CrmError) else ""


@pytest.mark.parametrize(("error", "code"), CASES, ids=_case_id)
def test_round_trip(error: errors.CrmError, code: grpc.StatusCode) -> None:
    status_code, details = to_status_details(error)
    assert status_code == code == code_of(error)
    status = status_pb2.Status.FromString(details)
    assert status.code == getattr(code_pb2, code.name)
    assert status.message == error.message
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (error.reason, "crm", error.metadata)

    rebuilt = from_rpc_error(_rpc_error(status_code, error.message, details))
    assert type(rebuilt) is type(error)
    assert rebuilt == error  # message, reason, metadata and (for InvalidArgument) violations


def test_no_bad_request_detail_without_violations() -> None:
    _, details = to_status_details(errors.InvalidArgument("bad"))
    assert len(status_pb2.Status.FromString(details).details) == 1


def test_without_details_the_code_decides() -> None:
    rebuilt = from_rpc_error(_rpc_error(grpc.StatusCode.NOT_FOUND, "gone", None))
    assert rebuilt == errors.NotFound("gone")
    rebuilt = from_rpc_error(_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad", None))
    assert rebuilt == errors.InvalidArgument("bad")


def test_transport_failures() -> None:
    unavailable = from_rpc_error(_rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect", None))
    assert isinstance(unavailable, errors.Unavailable)
    late = from_rpc_error(_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", None))
    assert isinstance(late, errors.Unavailable) and late.reason == "DEADLINE_EXCEEDED"


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                                  grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNIMPLEMENTED])
def test_unmapped_codes_are_internal_and_leak_nothing(code: grpc.StatusCode) -> None:
    rebuilt = from_rpc_error(_rpc_error(code, "Traceback: secret stuff", None))
    assert type(rebuilt) is errors.CrmError
    assert (rebuilt.message, rebuilt.reason) == ("internal error", "INTERNAL")
