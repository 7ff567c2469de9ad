"""Compartment membership as SQL: a compartment search, a ``patient/`` scope, and a
Bulk Data export's population (several owners, or all of one type)."""

from __future__ import annotations

from psycopg import sql

from fhir_server.search.request import Compartment
from fhir_server.storage.sql.common import Fragment


def member_of(compartment: Compartment, ref: sql.Identifier, res: sql.Composable,
              owner: bool) -> Fragment:
    """``res`` is in the compartment (``ref``: a fresh alias for its index rows); with
    ``owner`` the owner itself and resources of types that cannot be in it pass too (an
    access scope, not a compartment search)."""
    if compartment.owners is not None:
        return _in_compartments(compartment, compartment.owners, ref, res)
    member = (sql.SQL(
        "EXISTS (SELECT 1 FROM idx_reference {c} WHERE {c}.rid = {res}.rid"
        " AND {c}.p = ANY(%s::bigint[]) AND {c}.target_type = %s AND {c}.target_id = %s)"
    ).format(c=ref, res=res), [[p.p for p in compartment.params],
                               compartment.owner_type, compartment.owner_id])
    if not owner:
        return member
    return sql.SQL(
        "({res}.resource_type <> ALL(%s::text[]) OR ({res}.resource_type = %s"
        " AND {res}.id = %s) OR {member})").format(res=res, member=member[0]), [
        sorted(compartment.member_types()), compartment.owner_type,
        compartment.owner_id, *member[1]]


def _in_compartments(compartment: Compartment, owners: tuple[str, ...],
                     ref: sql.Identifier, res: sql.Composable) -> Fragment:
    """``res`` is one of ``owners`` or in the compartment of one (of any resource of
    the owner type when ``owners`` is empty): a Bulk Data export's population."""
    if not owners:
        return sql.SQL(
            "({res}.resource_type = %s OR EXISTS (SELECT 1 FROM idx_reference {c}"
            " WHERE {c}.rid = {res}.rid AND {c}.p = ANY(%s::bigint[])"
            " AND {c}.target_type = %s))").format(c=ref, res=res), [
            compartment.owner_type, [p.p for p in compartment.params],
            compartment.owner_type]
    return sql.SQL(
        "(({res}.resource_type = %s AND {res}.id = ANY(%s::text[])) OR EXISTS (SELECT 1"
        " FROM idx_reference {c} WHERE {c}.rid = {res}.rid AND {c}.p = ANY(%s::bigint[])"
        " AND {c}.target_type = %s AND {c}.target_id = ANY(%s::text[])))").format(
        c=ref, res=res), [compartment.owner_type, list(owners),
                          [p.p for p in compartment.params], compartment.owner_type,
                          list(owners)]
