"""gRPC methods of customer data migration (R-CUS-03): resumable uploads of import files, the
likely-duplicates report, merge and dismissal. Mixed into CustomersServicer."""

from __future__ import annotations

from typing import Any

import grpc

from crm.customers.v1 import customers_pb2 as pb
from crm_customers.app import imports, merge
from crm_customers.app.messages import customer_to_pb
from crm_customers.domain.model import Customer
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.ids import parse_id
from crmkit.pagination import page_size


def _customer_out(customer: Customer) -> pb.Customer:
    return customer_to_pb(customer, reveal=current_principal().sees_sensitive)


def upload_to_pb(upload: imports.Upload) -> pb.ImportUpload:
    return pb.ImportUpload(id=str(upload.id), file_name=upload.file_name, size=upload.size,
                           received=upload.received, complete=upload.complete)


class MigrationRpcs:
    def _uow(self) -> UnitOfWork:  # provided by CustomersServicer
        raise NotImplementedError

    async def CreateImportUpload(self, request: pb.CreateImportUploadRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            upload = await imports.create_upload(uow, current_principal(), file_name=request.file_name,
                                                 size=request.size)
        return pb.CreateImportUploadResponse(upload=upload_to_pb(upload))

    async def AppendImportUploadChunk(self, request: pb.AppendImportUploadChunkRequest,
                                      context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            upload = await imports.append_chunk(uow, current_principal(), parse_id(request.id), request.offset,
                                                request.data, total=request.total)
        return pb.AppendImportUploadChunkResponse(upload=upload_to_pb(upload))

    async def GetImportUpload(self, request: pb.GetImportUploadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            upload = await imports.get_upload(uow, current_principal(), parse_id(request.id))
        return pb.GetImportUploadResponse(upload=upload_to_pb(upload))

    async def ListDuplicateCustomers(self, request: pb.ListDuplicateCustomersRequest,
                                     context: grpc.aio.ServicerContext) -> Any:
        customer_id = parse_id(request.customer_id, "customer_id") if request.customer_id else None
        async with self._uow() as uow:
            pairs, token = await merge.list_duplicates(
                uow, current_principal(), min_similarity=request.min_similarity, customer_id=customer_id,
                page_token=request.page_token, limit=page_size(request.page_size))
        return pb.ListDuplicateCustomersResponse(
            pairs=[pb.DuplicatePair(first=_customer_out(p.first), second=_customer_out(p.second),
                                    same_tax_id=p.same_tax_id, name_similarity=p.name_similarity) for p in pairs],
            next_page_token=token)

    async def MergeCustomers(self, request: pb.MergeCustomersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            result = await merge.merge_customers(uow, current_principal(),
                                                 parse_id(request.surviving_id, "surviving_id"),
                                                 parse_id(request.merged_id, "merged_id"))
        return pb.MergeCustomersResponse(customer=_customer_out(result.customer),
                                         filled_fields=list(result.filled_fields),
                                         moved_contacts=result.moved_contacts,
                                         moved_follow_ups=result.moved_follow_ups)

    async def DismissDuplicate(self, request: pb.DismissDuplicateRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await merge.dismiss_duplicate(uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                                          parse_id(request.other_id, "other_id"))
        return pb.DismissDuplicateResponse()
