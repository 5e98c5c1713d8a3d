"""What an import makes of the records it reads, before any store sees them."""

import dataclasses

from application.transfer.import_tenant import NAMING_THEIR_TENANT
from application.transfer.tenant_export_format import RECORD_TYPES


def test_every_record_that_names_its_tenant_is_made_the_imported_tenants() -> None:
    # A record type gaining a tenant_id and missing here would be written under the tenant
    # the file names, which may be another one of the store.
    naming = {
        cls
        for cls in RECORD_TYPES.values()
        if "tenant_id" in {f.name for f in dataclasses.fields(cls)}
    }

    assert naming == set(NAMING_THEIR_TENANT)
