"""Names a tenant chooses (meters, plans, tenants, attributes, kinds) are exactly their allowed
characters: a name with a final newline is a different name that would pass `$`, and would then
be a meter, plan or report group of its own."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from domain.credits import MeterRate, Rate
from domain.errors import InvalidInput
from domain.plans import Plan
from domain.tenants import Tenant, TenantSettings
from domain.usage import validate_usage

NAMED: dict[str, Callable[[str], Any]] = {
    "a meter": lambda name: validate_usage("meters", {name: 1}),
    "a rated meter": lambda name: Rate("webinar", 1, meter_rates={name: MeterRate(Decimal(1), 1)}),
    "a plan": lambda name: Plan(name),
    "a tenant": lambda name: Tenant("t-1", name, datetime.now(UTC)),
    "a report dimension": lambda name: TenantSettings(dimensions=(name,)),
    "a personal attribute": lambda name: TenantSettings(personal_attributes=(name,)),
    "a session kind": lambda name: Rate(name, 1),
}


@pytest.mark.parametrize("what", NAMED)
def test_a_name_with_a_final_newline_is_refused(what: str) -> None:
    name_of = NAMED[what]
    name_of("name")  # the same name without it is taken

    with pytest.raises(InvalidInput):
        name_of("name\n")
