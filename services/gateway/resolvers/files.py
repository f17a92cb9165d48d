"""Files: uploadFile, deleteFile, file, files."""

from __future__ import annotations

from typing import Any

from ariadne import ObjectType
from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation, query
from services.gateway.uploads import FileUpload

file_type = ObjectType("File")
# convert_names_case would look `sha256` up as `sha_256`.
file_type.set_alias("sha256", "sha256")


@file_type.field("downloadUrl")
async def resolve_download_url(file: dict[str, Any], info: GraphQLResolveInfo) -> str | None:
    """A signed link to the content, for the caller's own file only (null otherwise)."""
    context = info.context
    identity = await context.identity()
    if context.download_links is None or str(file.get("owner_id")) != identity.user_id:
        return None
    return context.download_links.url_for(file_id=file["id"], owner_id=identity.user_id)


@file_type.field("producedBy")
async def resolve_produced_by(
    file: dict[str, Any], info: GraphQLResolveInfo
) -> dict[str, Any] | None:
    """The task whose output the file is: null for an upload, or when it is gone or not yours."""
    task_id = file.get("produced_by_task_id")
    if not task_id:
        return None
    context = info.context
    return await context.clients.tasks.get_task(context.caller, task_id=str(task_id))


@query.field("file")
async def resolve_file(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> dict[str, Any] | None:
    """One of the caller's files; null when absent, not theirs, or not a file id at all."""
    context = info.context
    context.require_token()
    return await context.clients.files.get_file(context.caller, file_id=id)


@query.field("files")
async def resolve_files(
    _obj: Any,
    info: GraphQLResolveInfo,
    *,
    first: int | None = None,
    after: str | None = None,
    search: str | None = None,
) -> dict[str, Any]:
    """The caller's files (newest first, or best match first for a search), as a connection."""
    context = info.context
    context.require_token()
    page = await context.clients.files.list_files(
        context.caller, first=first, after=after, search=search
    )
    return {
        "edges": page["edges"],
        "page_info": page["page_info"],
        "total_count": page["total_count"],
    }


@mutation.field("uploadFile")
async def resolve_upload_file(
    _obj: Any, info: GraphQLResolveInfo, *, file: FileUpload
) -> dict[str, Any]:
    """Pass the file on to the files service while it arrives; processing follows later."""
    context = info.context
    # Verified here, not only by the files service: a bad token must not cost a whole upload.
    await context.identity()
    return await context.clients.files.upload_file(context.caller, upload=file)


@mutation.field("deleteFile")
async def resolve_delete_file(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> bool:
    """Delete one of the caller's files; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    await context.clients.files.delete_file(context.caller, file_id=id)
    return True
