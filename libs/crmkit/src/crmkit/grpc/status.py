"""CrmError ⇄ gRPC status with rich details (google.rpc.ErrorInfo and BadRequest), both ways."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crmkit import errors

_CODES: list[tuple[type[errors.CrmError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.StaleVersion, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]
_DOMAIN = "crm"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def code_of(error: errors.CrmError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.UNKNOWN


def to_status_details(error: errors.CrmError) -> tuple[grpc.StatusCode, bytes]:
    code = code_of(error)
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=_DOMAIN,
                                          metadata={k: errors.clip(v) for k, v in error.metadata.items()}))
    details.append(info)
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=errors.clip(v.field),
                                                        description=errors.clip(v.description))
            for v in error.violations[:errors.MAX_VIOLATIONS]]))
        details.append(bad)
    status = status_pb2.Status(code=getattr(code_pb2, code.name),
                               message=errors.clip(error.message, errors.MAX_MESSAGE_CHARS), details=details)
    return code, status.SerializeToString()


def from_rpc_error(exc: grpc.aio.AioRpcError) -> errors.CrmError:
    """Rebuilds the CrmError a service raised, so the gateway maps one vocabulary to HTTP."""
    reason, metadata, violations = "", {}, []
    for key, value in exc.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason, metadata = info.reason, dict(info.metadata)
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations = [errors.FieldViolation(v.field, v.description) for v in bad.field_violations]
    message = exc.details() or exc.code().name
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidArgument(message, reason=reason or "INVALID_ARGUMENT", metadata=metadata,
                                      violations=violations)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.Unavailable("the service did not answer in time", reason="DEADLINE_EXCEEDED")
    for cls, cls_code in _CODES:
        if cls_code == code:
            return cls(message, **({"reason": reason} if reason else {}), metadata=metadata)
    return errors.CrmError("internal error", reason="INTERNAL")
