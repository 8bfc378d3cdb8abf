"""``tipline temporal setup``: prepare a Temporal namespace for Tipline through the operator service.

The dev server gets Tipline's search attributes as ``--search-attribute`` flags (tipline.stack); a real cluster
gets them here, once per namespace. Running it again changes nothing; an attribute that exists with another
type is an error to fix by hand, never something to overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from workflows import search_attributes as sa


class SetupConflict(RuntimeError):
    """A search attribute already exists in the namespace with another type."""


@dataclass(frozen=True)
class SetupResult:
    added: list[str]
    present: list[str]


def wanted() -> dict[str, IndexedValueType.ValueType]:
    """Every Tipline search attribute with the type Temporal's API names it by."""
    return {key.name: SearchAttributeIndexedValueType(key.indexed_value_type).value for key, _ in sa.ALL}


async def setup_search_attributes(client: Client) -> SetupResult:
    namespace = client.namespace
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    existing = {**listed.system_attributes, **listed.custom_attributes}
    missing: dict[str, IndexedValueType.ValueType] = {}
    present: list[str] = []
    for name, kind in wanted().items():
        if name not in existing:
            missing[name] = kind
        elif existing[name] != kind:
            raise SetupConflict(f"search attribute {name} exists in namespace {namespace} as "
                                f"{IndexedValueType.Name(existing[name])}, Tipline needs {IndexedValueType.Name(kind)}")
        else:
            present.append(name)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
    return SetupResult(added=sorted(missing), present=sorted(present))
