"""Data rights: forgetting a subject, removing a resource's log."""

from litestar import Controller, delete
from litestar.di import NamedDependency
from litestar.params import FromPath

from application.data_rights.delete_resource import DeleteResource, DeleteResourceCommand
from application.data_rights.erase_subject import EraseSubject, EraseSubjectCommand
from application.tenants.authenticate import Principal
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.data_rights import DeletedResourceOut, ErasedOut


class DataRightsController(Controller):
    path = "/"
    tags = ["data rights"]
    opt = needs(Role.ADMIN)

    @delete(
        "/subjects/{subject_id:str}",
        summary="Erase a subject's personal data",
        operation_id="eraseSubject",
        description=rules_of(EraseSubject),
        status_code=200,
        responses=documented(
            {
                401: AUTH,
                403: NEEDS_ADMIN,
                503: "another erasure of the subject held its ledger for 40 s, or the storage "
                "failed: send it again after `Retry-After` seconds",
            }
        ),
    )
    async def erase_subject(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        erase_subject: NamedDependency[EraseSubject],
    ) -> ErasedOut:
        return ErasedOut.of(await erase_subject(EraseSubjectCommand(caller.tenant, subject_id)))

    @delete(
        "/resources/{resource_id:str}",
        summary="Delete a resource's sessions, events and rollups",
        operation_id="deleteResource",
        description=rules_of(DeleteResource),
        status_code=200,
        responses=documented({401: AUTH, 403: NEEDS_ADMIN}),
    )
    async def delete_resource(
        self,
        resource_id: FromPath[str],
        caller: NamedDependency[Principal],
        delete_resource: NamedDependency[DeleteResource],
    ) -> DeletedResourceOut:
        deleted = await delete_resource(DeleteResourceCommand(caller.tenant, resource_id))
        return DeletedResourceOut.of(deleted)
