"""The example package's `tsv` processor runs in real processing; its result lands in `extra`."""

from __future__ import annotations

import uuid

from services.files import processing
from services.files.tests.conftest import upload


def process(app, file_id: str) -> processing.ProcessingOutcome:
    files = app.extensions["files"]
    return processing.process_file(
        files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
    )


def test_the_example_tsv_processor_puts_its_result_in_the_files_extra(app, client, user):
    content = b"name\tsize\tkind\na.txt\t3\ttext\nb.png\t10\timage\n"
    response = upload(client, user, content, filename="listing.tsv")
    assert response.status_code == 201, response.json
    file_id = response.json["id"]
    process(app, file_id)
    body = client.get(f"/v1/files/{file_id}", headers=user.headers).json
    assert body["status"] == "PROCESSED", body
    assert body["extra"] == {"tsv": {"rows": 3, "columns": 3}}


def test_the_example_processor_leaves_other_files_alone(app, client, user):
    response = upload(client, user, b"a\tb\n", filename="notes.txt")
    file_id = response.json["id"]
    process(app, file_id)
    body = client.get(f"/v1/files/{file_id}", headers=user.headers).json
    assert body["status"] == "PROCESSED" and "tsv" not in body["extra"]
